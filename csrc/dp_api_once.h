/* dp_api_once.h - dp_api.h for the C side, included once whoever asks
 *
 * dp_api.h is read bare by cffi's cdef() (build_ffi.py), which takes no
 * include guard and no #include: this header gives it both, so any file may
 * include the public API it uses.
 */
#ifndef DP_API_ONCE_H
#define DP_API_ONCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_api.h"

#endif /* DP_API_ONCE_H */
