# SPDX-License-Identifier: Apache-2.0
#
# Finds hiredis and defines one imported target for larder to link:
# larder::hiredis. Works with
#   * a parent project's own hiredis::hiredis / hiredis target (it wins),
#   * upstream hiredis >= 1.0, which installs hiredis-config.cmake exporting hiredis::hiredis,
#   * Debian/Ubuntu hiredis 0.14, whose HiredisConfig.cmake only sets
#     HIREDIS_INCLUDE_DIRS and HIREDIS_LIBRARIES,
#   * pkg-config's hiredis.pc as the last resort.
# Installed beside larderConfig.cmake, so consumers of an installed larder find
# hiredis the same way larder did.
include_guard(GLOBAL)

if(TARGET larder::hiredis)
  return()
endif()

set(_larder_hiredis_target "")
if(TARGET hiredis::hiredis)
  set(_larder_hiredis_target hiredis::hiredis)
elseif(TARGET hiredis)
  set(_larder_hiredis_target hiredis)
else()
  find_package(hiredis CONFIG QUIET)        # upstream 1.x
  if(TARGET hiredis::hiredis)
    set(_larder_hiredis_target hiredis::hiredis)
  endif()
endif()

if(_larder_hiredis_target)
  add_library(larder::hiredis INTERFACE IMPORTED)
  set_target_properties(larder::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES ${_larder_hiredis_target})
  return()
endif()

# Debian 0.14: variables only. Its HiredisConfigVersion.cmake fails with a
# CMake error when no version is requested, so ask for "0.0" (any 0.x).
find_package(Hiredis 0.0 CONFIG QUIET)
if(NOT HIREDIS_INCLUDE_DIRS OR NOT HIREDIS_LIBRARIES)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(_LARDER_HIREDIS_PC QUIET hiredis)
    if(_LARDER_HIREDIS_PC_FOUND)
      find_library(HIREDIS_LIBRARIES NAMES hiredis HINTS ${_LARDER_HIREDIS_PC_LIBRARY_DIRS})
      # The .pc file's include dir ends in /hiredis; larder includes <hiredis/hiredis.h>.
      find_path(HIREDIS_INCLUDE_DIRS hiredis/hiredis.h HINTS ${_LARDER_HIREDIS_PC_INCLUDEDIR}/..)
    endif()
  endif()
endif()
if(NOT HIREDIS_INCLUDE_DIRS OR NOT HIREDIS_LIBRARIES)
  find_path(HIREDIS_INCLUDE_DIRS hiredis/hiredis.h)
  find_library(HIREDIS_LIBRARIES NAMES hiredis)
endif()

if(HIREDIS_INCLUDE_DIRS AND HIREDIS_LIBRARIES)
  add_library(larder::hiredis INTERFACE IMPORTED)
  set_target_properties(larder::hiredis PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${HIREDIS_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "${HIREDIS_LIBRARIES}")
endif()
