# man.cmake — one man page from `repsweep [CMD] --help` with help2man (cmake -P; called by
# CMakeLists.txt with HELP2MAN, BIN, CMD (empty for the top level), VERSION, OUT).
# help2man runs a program without arguments of its own, so a subcommand gets a wrapper.
get_filename_component(dir "${OUT}" DIRECTORY)
if(CMD)
  set(prog "${dir}/repsweep-${CMD}")
  file(WRITE "${prog}" "#!/bin/sh\nexec \"${BIN}\" ${CMD} \"$@\"\n")
  set(name "repsweep ${CMD}")
else()
  set(prog "${dir}/repsweep")
  file(WRITE "${prog}" "#!/bin/sh\nexec \"${BIN}\" \"$@\"\n")
  set(name "repsweep")
endif()
file(CHMOD "${prog}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
     WORLD_READ WORLD_EXECUTE)
execute_process(COMMAND "${HELP2MAN}" --no-info --no-discard-stderr
                        --version-string=${VERSION} --name=${name} --output=${OUT} "${prog}"
                RESULT_VARIABLE rc)
file(REMOVE "${prog}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed for '${name}' (${rc})")
endif()
