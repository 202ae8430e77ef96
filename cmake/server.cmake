# Network layers and horad: libuv, libmicrohttpd, jansson, libcurl, C-Raft.
if(NOT HORA_SERVER)
  return()
endif()

find_package(PkgConfig REQUIRED)
pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET openssl)
# GnuTLS: libmicrohttpd's TLS library (libmicrohttpd-dev depends on
# libgnutls28-dev); src/api/http_conn.c writes through MHD's session.
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)

# C-Raft 0.22.1, built by scripts/build-raft.sh into .deps/raft.
set(HORA_RAFT_PREFIX ${CMAKE_SOURCE_DIR}/.deps/raft)
find_library(RAFT_LIB NAMES libraft.a PATHS ${HORA_RAFT_PREFIX}/lib NO_DEFAULT_PATH)
find_path(RAFT_INCLUDE raft.h PATHS ${HORA_RAFT_PREFIX}/include NO_DEFAULT_PATH)
find_library(LZ4_LIB lz4)
if(NOT RAFT_LIB OR NOT RAFT_INCLUDE OR NOT LZ4_LIB)
  message(FATAL_ERROR "C-Raft 0.22.1 not found in ${HORA_RAFT_PREFIX}: run scripts/install-deps.sh")
endif()
add_library(raft_vendored INTERFACE)
target_include_directories(raft_vendored SYSTEM INTERFACE ${RAFT_INCLUDE})
target_link_libraries(raft_vendored INTERFACE ${RAFT_LIB} PkgConfig::UV ${LZ4_LIB})
set(HORA_HAVE_RAFT ON)

# The dashboard (web/index.html) is embedded as a byte array.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/web/index.html)
file(READ ${CMAKE_SOURCE_DIR}/web/index.html HORA_UI_HEX HEX)
file(SIZE ${CMAKE_SOURCE_DIR}/web/index.html HORA_UI_LEN)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," HORA_UI_BYTES "${HORA_UI_HEX}")
file(WRITE ${CMAKE_BINARY_DIR}/generated/ui_assets.c
  "/* generated from web/index.html by cmake/server.cmake */\n#include <stddef.h>\nextern const unsigned char ui_index_html[];\nextern const size_t ui_index_html_len;\nconst unsigned char ui_index_html[] = {${HORA_UI_BYTES} 0};\nconst size_t ui_index_html_len = ${HORA_UI_LEN};\n")

# net, cluster, api, exec and worker: the loop-driven layers of a node.
file(GLOB HORA_NET_SRC CONFIGURE_DEPENDS src/net/*.c src/cluster/*.c src/api/*.c src/exec/*.c
  src/worker/*.c)
list(REMOVE_ITEM HORA_NET_SRC ${HORA_LEADER_SRC}) # in horaleader
add_library(horanet STATIC ${HORA_NET_SRC} ${CMAKE_BINARY_DIR}/generated/ui_assets.c)
target_link_libraries(horanet PUBLIC horaleader horacore raft_vendored PkgConfig::UV
  PkgConfig::MHD PkgConfig::GNUTLS PkgConfig::JANSSON PkgConfig::CURL PkgConfig::OPENSSL)
set(HORA_TEST_LIBS horanet)

file(GLOB HORA_DAEMON_SRC CONFIGURE_DEPENDS src/daemon/*.c)
if(HORA_DAEMON_SRC)
  add_executable(horad ${HORA_DAEMON_SRC})
  target_link_libraries(horad PRIVATE horanet)
endif()
