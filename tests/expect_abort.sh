#!/bin/sh
# usage: expect_abort.sh REGEX PROGRAM ARGS...
# Passes when PROGRAM dies of SIGABRT and its stderr matches the extended REGEX.
regex=$1; shift
err=$(mktemp)
"$@" >/dev/null 2>"$err"
rc=$?
if [ "$rc" -ne 134 ] && [ "$rc" -ne 262 ]; then
  echo "expected an abort (status 134), got status $rc; stderr:"; cat "$err"; rm -f "$err"; exit 1
fi
if ! grep -Eq -- "$regex" "$err"; then
  echo "stderr does not match /$regex/:"; cat "$err"; rm -f "$err"; exit 1
fi
rm -f "$err"
exit 0
