/* defer / panic / recover for C: see docs/defer.md.  (Filled in by the defer subsystem.) */
#ifndef CGC_DEFER_H
#define CGC_DEFER_H
#endif
