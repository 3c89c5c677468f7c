/* tinyfit's QEMU TCG plugin: counts executed guest instructions by class (loads, loads that
 * directly follow a load or store — which the Cortex-M4 pipelines into one cycle —, stores,
 * multiplies and multiply-accumulates, branches, other), and the words that multi-word
 * transfers (LDRD, STRD, LDM, STM, PUSH, POP) move beyond their first, in phases separated by
 * calls to a marker function.
 *
 * Arguments: marker=ADDRESS (entry of the marker function, hex), out=PATH (the counts file).
 * Every execution of the translation block that starts at the marker begins a new phase; at
 * exit the plugin writes one line per phase:
 * "load store mac branch other pipelined_load extra_words".
 * Counting is per
 * translation block (each block's class histogram is worked out once, when QEMU translates it,
 * and added on every execution), so counts are exact and cost little time.
 *
 * Built against qemu-plugin.h from Debian's qemu source package (API version 1, QEMU 7.2). */
#include <qemu-plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { LOAD, STORE, MAC, BRANCH, OTHER, PIPELINED_LOAD, CLASSES };
/* Counters: the classes, then the extra words. */
enum { EXTRA_WORDS = CLASSES, COUNTERS };
#define MAX_PHASES 65536

static uint64_t counts[MAX_PHASES][COUNTERS];
static unsigned phase;
static uint64_t marker;
static const char *out_path;

/* A translated block's instructions by class, its extra words, and whether it is the marker's
 * entry. */
struct block {
    uint32_t n[COUNTERS];
    int is_marker;
};

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The class of one instruction from its disassembly ("mnemonic operands"). */
static int classify(const char *disas) {
    static const char *const macs[] = {"mla", "mls", "mul", "smla", "smls", "smul", "smmla",
                                       "smmls", "smmul", "smuad", "smusd", "umla", "umul",
                                       "umaal", "sdiv", "udiv", NULL};
    static const char *const branches[] = {"b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh",
                                           NULL};
    char mnemonic[16];
    size_t i = 0;
    while (disas[i] != '\0' && disas[i] != ' ' && disas[i] != '\t' && i + 1 < sizeof mnemonic) {
        mnemonic[i] = disas[i];
        i++;
    }
    mnemonic[i] = '\0';
    /* Drop a width qualifier (".w", ".n") and condition codes are kept in the prefix tests. */
    char *dot = strchr(mnemonic, '.');
    if (dot) {
        *dot = '\0';
    }
    if (starts_with(mnemonic, "ldr") || starts_with(mnemonic, "ldm") ||
        starts_with(mnemonic, "pop") || starts_with(mnemonic, "vldr") ||
        starts_with(mnemonic, "vldm") || starts_with(mnemonic, "vpop")) {
        /* A pop that writes pc is a return: a branch. */
        return strstr(disas, "pc") && starts_with(mnemonic, "pop") ? BRANCH : LOAD;
    }
    if (starts_with(mnemonic, "str") || starts_with(mnemonic, "stm") ||
        starts_with(mnemonic, "push") || starts_with(mnemonic, "vstr") ||
        starts_with(mnemonic, "vstm") || starts_with(mnemonic, "vpush")) {
        return STORE;
    }
    for (int k = 0; macs[k]; k++) {
        if (starts_with(mnemonic, macs[k])) {
            return MAC;
        }
    }
    /* Branches: b, bl, bx, blx with or without a condition suffix (beq, bne, ...), and the
     * compare-and-branch and table-branch forms; not bic, bfi, bfc. */
    for (int k = 0; branches[k]; k++) {
        if (strcmp(mnemonic, branches[k]) == 0) {
            return BRANCH;
        }
    }
    static const char *const conditions[] = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl",
                                             "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le",
                                             NULL};
    if (mnemonic[0] == 'b' && strlen(mnemonic) == 3) {
        for (int k = 0; conditions[k]; k++) {
            if (strcmp(mnemonic + 1, conditions[k]) == 0) {
                return BRANCH;
            }
        }
    }
    return OTHER;
}

/* The words a transfer moves beyond its first: one for LDRD and STRD, one fewer than the
 * registers listed for LDM, STM, PUSH and POP (a D register of VPUSH, VPOP, VLDM, VSTM counts
 * two words); zero for everything else. */
static int extra_words(const char *disas) {
    if (starts_with(disas, "ldrd") || starts_with(disas, "strd")) {
        return 1;
    }
    static const char *const multiples[] = {"ldm", "stm", "push", "pop", "vldm", "vstm",
                                            "vpush", "vpop", NULL};
    int multiple = 0;
    for (int k = 0; multiples[k]; k++) {
        multiple |= starts_with(disas, multiples[k]);
    }
    const char *list = strchr(disas, '{');
    if (!multiple || list == NULL) {
        return 0;
    }
    int words = 0;
    for (const char *r = list + 1; *r != '\0' && *r != '}'; r++) {
        /* Each register name starts after the brace or a comma-space. */
        if (r == list + 1 || (r[-1] == ' ' && r[-2] == ',')) {
            words += *r == 'd' ? 2 : 1;
        }
    }
    return words > 0 ? words - 1 : 0;
}

static void block_executed(unsigned int vcpu, void *userdata) {
    (void)vcpu;
    const struct block *b = userdata;
    if (b->is_marker && phase + 1 < MAX_PHASES) {
        phase++;
    }
    for (int c = 0; c < COUNTERS; c++) {
        counts[phase][c] += b->n[c];
    }
}

static void block_translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    struct block *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return;
    }
    b->is_marker = qemu_plugin_tb_vaddr(tb) == marker;
    size_t n = qemu_plugin_tb_n_insns(tb);
    int previous = OTHER;
    for (size_t i = 0; i < n; i++) {
        char *disas = qemu_plugin_insn_disas(qemu_plugin_tb_get_insn(tb, i));
        int class = disas ? classify(disas) : OTHER;
        /* A single load (LDR, LDRB, LDRH, LDRSB, LDRSH; not LDRD, LDM or POP) right after a
         * load or store in the same block: the M4 overlaps their address and data phases. */
        int single = class == LOAD && starts_with(disas, "ldr") && !starts_with(disas, "ldrd") &&
                     !starts_with(disas, "ldrex");
        int follows = previous == LOAD || previous == PIPELINED_LOAD || previous == STORE;
        b->n[EXTRA_WORDS] += disas ? extra_words(disas) : 0;
        free(disas);
        class = single && follows ? PIPELINED_LOAD : class;
        b->n[class]++;
        previous = class;
    }
    /* The block lives as long as QEMU may run it: until exit. */
    qemu_plugin_register_vcpu_tb_exec_cb(tb, block_executed, QEMU_PLUGIN_CB_NO_REGS, b);
}

static void at_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
        qemu_plugin_outs("tinyfit insn_classes: cannot write the counts file\n");
        return;
    }
    for (unsigned p = 0; p <= phase; p++) {
        fprintf(f, "%llu %llu %llu %llu %llu %llu %llu\n", (unsigned long long)counts[p][LOAD],
                (unsigned long long)counts[p][STORE], (unsigned long long)counts[p][MAC],
                (unsigned long long)counts[p][BRANCH], (unsigned long long)counts[p][OTHER],
                (unsigned long long)counts[p][PIPELINED_LOAD],
                (unsigned long long)counts[p][EXTRA_WORDS]);
    }
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "marker=", 7) == 0) {
            marker = strtoull(argv[i] + 7, NULL, 16) & ~1ull; /* Thumb bit off */
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = argv[i] + 4;
        }
    }
    if (out_path == NULL || marker == 0) {
        fprintf(stderr, "tinyfit insn_classes: needs marker=ADDRESS and out=PATH\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, block_translated);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
