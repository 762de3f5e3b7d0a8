/*
 * sl_version.h - the version of sluice, as --version prints it.
 */
#ifndef SL_VERSION_H
#define SL_VERSION_H

#define SL_VERSION "0.5.0"

#endif
