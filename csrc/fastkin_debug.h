/*
 * fastkin_debug.h - compile-time debug switch for fastkin C/Cython code.
 *
 * Build with -DFASTKIN_DEBUG=1 to enable extra internal checks; the default
 * (0) compiles them out.
 */
#ifndef FASTKIN_DEBUG_H
#define FASTKIN_DEBUG_H

#ifndef FASTKIN_DEBUG
#define FASTKIN_DEBUG 0
#endif

#endif /* FASTKIN_DEBUG_H */
