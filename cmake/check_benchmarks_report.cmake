# SPDX-License-Identifier: Apache-2.0
#
# check_benchmarks_report.cmake: docs/benchmarks.md and docs/img/ are in sync.
#   cmake -DDOCS=<docs dir> -P cmake/check_benchmarks_report.cmake
# Fails when the page names a chart (img/<name>.png) that does not exist,
# when docs/img/ holds a PNG the page does not name, or when a chart has no
# caption saying the commit and date it was made from ("Made from commit
# <hash>, <YYYY-MM-DD>"). scripts/report.sh writes both; ctest runs this.
if(NOT DEFINED DOCS)
  message(FATAL_ERROR "check_benchmarks_report: pass -DDOCS=<docs dir>")
endif()
get_filename_component(DOCS "${DOCS}" ABSOLUTE)
set(_md "${DOCS}/benchmarks.md")
if(NOT EXISTS "${_md}")
  message(FATAL_ERROR "check_benchmarks_report: ${_md} does not exist (run scripts/report.sh)")
endif()
file(READ "${_md}" _text)
# "(img/<name>.png)": no "]" in the match (a bracket would stop CMake
# splitting the list).
string(REGEX MATCHALL "\\(img/[A-Za-z0-9_.-]+\\.png\\)" _refs "${_text}")
set(_named "")
foreach(_r IN LISTS _refs)
  string(REGEX REPLACE "^\\(img/(.*)\\)$" "\\1" _n "${_r}")
  list(APPEND _named "${_n}")
endforeach()
list(REMOVE_DUPLICATES _named)
file(GLOB _files RELATIVE "${DOCS}/img" "${DOCS}/img/*.png")
set(_bad "")
foreach(_n IN LISTS _named)
  if(NOT EXISTS "${DOCS}/img/${_n}")
    string(APPEND _bad "\n  benchmarks.md names img/${_n}, which does not exist")
  endif()
endforeach()
foreach(_f IN LISTS _files)
  list(FIND _named "${_f}" _i)
  if(_i EQUAL -1)
    string(APPEND _bad "\n  docs/img/${_f} exists but benchmarks.md does not name it")
  endif()
endforeach()
list(LENGTH _named _n_named)
string(REGEX MATCHALL "Made from commit [0-9a-f]+[^,]*, [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]" _captions "${_text}")
list(LENGTH _captions _n_captions)
if(_n_captions LESS _n_named)
  string(APPEND _bad "\n  ${_n_named} charts but ${_n_captions} captions saying 'Made from commit <hash>, <date>'")
endif()
if(_n_named EQUAL 0)
  string(APPEND _bad "\n  benchmarks.md names no chart")
endif()
if(_bad)
  message(FATAL_ERROR "check_benchmarks_report: ${_md} and ${DOCS}/img are out of sync:${_bad}\n"
                      "Run scripts/report.sh and commit docs/.")
endif()
message(STATUS "check_benchmarks_report: ${_n_named} charts, all present and captioned")
