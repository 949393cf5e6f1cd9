/*
 * A QEMU TCG plugin that counts executed guest instructions (qemu-user, 7.2 plugin API).
 *
 *   qemu-aarch64 -plugin libinsn.so,out=/tmp/count.txt -d plugin ... program
 *
 * Every translation block gets an inline add of its instruction count, executed each time the block
 * runs, so the total is exact for a single-threaded guest and costs no callback per instruction. The
 * count is written to `out` (or to qemu's plugin log) when the guest exits. Inline adds are not atomic:
 * count guests that run one thread (edgevit counts with num_threads=1).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static char out_path[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_guest_exit(qemu_plugin_id_t id, void *unused)
{
    if (out_path[0]) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fprintf(f, "%" PRIu64 "\n", executed);
            fclose(f);
            return;
        }
    }
    g_autofree gchar *line = g_strdup_printf("insns %" PRIu64 "\n", executed);
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            g_strlcpy(out_path, argv[i] + 4, sizeof(out_path));
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
