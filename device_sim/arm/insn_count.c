/*
 * A QEMU TCG plugin that counts executed guest instructions (qemu-user, 7.2 plugin API).
 *
 *   qemu-aarch64 -plugin libinsn.so,out=/tmp/count.txt -d plugin ... program
 *
 * Every translation block gets an inline add of its instruction count, executed each time the block
 * runs, so the total is exact for a single-threaded guest and costs no callback per instruction. The
 * count is written to `out` (or to qemu's plugin log) when the guest exits. Inline adds are not atomic:
 * count guests that run one thread (edgevit counts with num_threads=1).
 *
 * Marks: a guest that calls lseek(-1, MARK_MAGIC, 0) (it fails with EBADF and changes nothing) records
 * the running count at that point; each mark is written as a line "mark N" after the total, so one
 * guest run can measure many segments (count at the end mark minus count at the start mark).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARK_MAGIC 0x6564676576697400ULL   /* "edgevit\0" */
#define AARCH64_LSEEK 62

static uint64_t executed;
static char out_path[4096];
static GArray *marks;

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num == AARCH64_LSEEK && a1 == UINT64_MAX && a2 == MARK_MAGIC) {
        g_array_append_val(marks, executed);
    }
}

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
            for (guint i = 0; i < marks->len; i++) {
                fprintf(f, "mark %" PRIu64 "\n", g_array_index(marks, uint64_t, i));
            }
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
    marks = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_guest_exit, NULL);
    return 0;
}
