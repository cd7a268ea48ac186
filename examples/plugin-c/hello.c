/* `ws hello_c NAME`: a ws subcommand written in C, against the same declaration as the
 * Rust plugins. Build: cc -shared -fPIC -o libws_hello_c.so hello.c
 * (-DWS_ABI=N and -DWS_API='"X.Y.Z"' build it as if for another ABI or plugin-api version:
 * the tests check the host's answer to both). */
#include <stdio.h>
#include <string.h>

#include "ws_plugin.h"

#ifndef WS_ABI
#define WS_ABI WS_PLUGIN_ABI_VERSION
#endif
#ifndef WS_API
#define WS_API WS_PLUGIN_API_VERSION
#endif

static int32_t run(size_t argc, const char *const *argv) {
    const char *me = argc > 0 ? argv[0] : "ws hello_c";
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Say hello, from C\n\nUsage: %s [OPTIONS] NAME\n\nOptions:\n      --fail\n          Exit with code 3\n\n  -h, --help\n          Print help\n", me);
        fflush(stdout);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "%s: missing NAME (usage: %s NAME)\n", me, me);
        return 2;
    }
    if (strcmp(argv[1], "--fail") == 0) {
        fprintf(stderr, "%s: failing on purpose\n", me);
        return 3;
    }
    printf("hello from C, %s\n", argv[1]);
    fflush(stdout);
    return 0;
}

WS_PLUGIN_EXPORT const struct ws_plugin_declaration ws_plugin_declaration = {
    WS_ABI, WS_API, "cc", "hello_c", "Say hello, from C", run,
};
