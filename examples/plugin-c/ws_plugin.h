/* The `ws` plugin declaration in C: the same bytes as `ws_plugin_api::PluginDeclaration`.
 *
 * A plugin is a shared library named libws_NAME.so that exports one symbol,
 * `ws_plugin_declaration`, of this type. The host reads `abi_version` first and refuses the
 * library unless it equals the ABI it was built for (WS_PLUGIN_ABI_VERSION); only then does
 * it trust the rest. Every string is static and NUL-terminated; nothing allocated on one
 * side is freed on the other.
 *
 * run(argc, argv): argv[0] is "ws NAME", the rest the user's arguments, borrowed for the
 * call. The return value is the process's exit code: 0 success, 1 failure, 2 usage error
 * (print one line on stderr first), anything else your own. Flush stdout before returning.
 */
#ifndef WS_PLUGIN_H
#define WS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define WS_PLUGIN_ABI_VERSION 1
#define WS_PLUGIN_API_VERSION "0.1.0"

struct ws_plugin_declaration {
    uint32_t abi_version;      /* first, forever */
    const char *api_version;   /* the ws-plugin-api version this follows, for `ws plugins` */
    const char *compiler;      /* informational */
    const char *name;          /* the subcommand: [a-z0-9_]+, the file's NAME */
    const char *summary;       /* one line for `ws --help` */
    int32_t (*run)(size_t argc, const char *const *argv);
};

#define WS_PLUGIN_EXPORT __attribute__((visibility("default")))

#endif
