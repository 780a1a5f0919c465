/*
 * qemu-img: the disk image utility's entry point. The global options (-h, -V, -T),
 * the table of subcommands and the help text. The helpers the subcommands share
 * live in common.c; each subcommand lives in its own file in this folder.
 */
#include "qemu-img.h"
#include <signal.h>

typedef struct ImgCmd {
    const char *name;
    int (*handler)(int argc, char **argv);
} ImgCmd;

static const ImgCmd img_cmds[] = {
    { "amend", img_amend },
    { "bench", img_bench },
    { "bitmap", img_bitmap },
    { "check", img_check },
    { "commit", img_commit },
    { "compare", img_compare },
    { "convert", img_convert },
    { "create", img_create },
    { "dd", img_dd },
    { "info", img_info },
    { "map", img_map },
    { "measure", img_measure },
    { "rebase", img_rebase },
    { "resize", img_resize },
    { "snapshot", img_snapshot },
    { NULL, NULL },
};

static const char *const help_syntax =
"  amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename\n"
"  bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename\n"
"  bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap\n"
"  check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] [--untrusted] filename\n"
"  commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename\n"
"  compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] [--untrusted] filename1 filename2\n"
"  convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-S sparse_size] [-m num_coroutines] [-W] [--untrusted] filename [filename2 [...]] output_filename\n"
"  create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]\n"
"  dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output\n"
"  info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] [--untrusted] filename\n"
"  map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] [--untrusted] filename\n"
"  measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]\n"
"  snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename\n"
"  rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] [-c] -b backing_file [-F backing_fmt] filename\n"
"  resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size\n";

static const char *const help_params =
"Command parameters:\n"
"  'filename' is a disk image filename\n"
"  'objectdef' is a QEMU user creatable object definition. See the qemu(1)\n"
"    manual page for a description of the object properties. The most common\n"
"    object type is a 'secret', which is used to supply passwords and/or\n"
"    encryption keys.\n"
"  'fmt' is the disk image format. It is guessed automatically in most cases\n"
"  'cache' is the cache mode used to write the output disk image, the valid\n"
"    options are: 'none', 'writeback' (default, except for convert), 'writethrough',\n"
"    'directsync' and 'unsafe' (default for convert)\n"
"  'src_cache' is the cache mode used to read input disk images, the valid\n"
"    options are the same as for the 'cache' option\n"
"  'size' is the disk image size in bytes. Optional suffixes\n"
"    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, 1024M),\n"
"    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)  are\n"
"    supported. 'b' is ignored.\n"
"  'output_filename' is the destination disk image filename\n"
"  'output_fmt' is the destination format\n"
"  'options' is a comma separated list of format specific options in a\n"
"    name=value format. Use -o help for an overview of the options supported by\n"
"    the used format\n"
"  'snapshot_param' is param used for internal snapshot, format\n"
"    is 'snapshot.id=[ID],snapshot.name=[NAME]', or\n"
"    '[ID_OR_NAME]'\n"
"  '-c' indicates that target image must be compressed (qcow format only)\n"
"  '-u' allows unsafe backing chains. For rebasing, it is assumed that old and\n"
"       new backing file match exactly. The image doesn't need a working\n"
"       backing file before rebasing in this case (useful for renaming the\n"
"       backing file). For image creation, allow creating without attempting\n"
"       to open the backing file.\n"
"  '-h' with or without a command shows this help and lists the supported formats\n"
"  '-p' show progress of command (only certain commands)\n"
"  '-q' use Quiet mode - do not print any output (except errors)\n"
"  '-S' indicates the consecutive number of bytes (defaults to 4k) that must\n"
"       contain only zeros for qemu-img to create a sparse image during\n"
"       conversion. If the number of bytes is 0, the source will not be scanned for\n"
"       unallocated or zero sectors, and the destination image will always be\n"
"       fully allocated\n"
"  '--output' takes the format in which the output must be done (human or json)\n"
"  '-n' skips the target volume creation (useful if the volume is created\n"
"       prior to running qemu-img)\n"
"  '--untrusted' refuses images that refer to other files (a backing file or an\n"
"       external data file): use it on images from untrusted sources\n"
"\n"
"Parameters to bitmap subcommand:\n"
"  'bitmap' is the name of the bitmap to manipulate, through one or more\n"
"       actions from '--add', '--remove', '--clear', '--enable', '--disable',\n"
"       or '--merge source'\n"
"  '-g granularity' sets the granularity for '--add' actions\n"
"  '-b source' and '-F src_fmt' tell '--merge' actions to find the source\n"
"       bitmaps from an alternative file\n"
"\n"
"Parameters to check subcommand:\n"
"  '-r' tries to repair any inconsistencies that are found during the check.\n"
"       '-r leaks' repairs only cluster leaks, whereas '-r all' fixes all\n"
"       kinds of errors, with a higher risk of choosing the wrong fix or\n"
"       hiding corruption that has already occurred.\n"
"\n"
"Parameters to convert subcommand:\n"
"  '-m' specifies how many coroutines work in parallel during the convert\n"
"       process (defaults to 8)\n"
"  '-W' allow to write to the target out of order rather than sequential\n"
"\n"
"Parameters to snapshot subcommand:\n"
"  'snapshot' is the name of the snapshot to create, apply or delete\n"
"  '-a' applies a snapshot (revert disk to saved state)\n"
"  '-c' creates a snapshot\n"
"  '-d' deletes a snapshot\n"
"  '-l' lists all snapshots in the given image\n"
"\n"
"Parameters to compare subcommand:\n"
"  '-f' first image format\n"
"  '-F' second image format\n"
"  '-s' run in Strict mode - fail on different image size or sector allocation\n"
"\n"
"Parameters to dd subcommand:\n"
"  'bs=BYTES' read and write up to BYTES bytes at a time (default: 512)\n"
"  'count=N' copy only N input blocks\n"
"  'if=FILE' read from FILE\n"
"  'of=FILE' write to FILE\n"
"  'skip=N' skip N bs-sized blocks at the start of input\n";

static void print_version(void)
{
    printf("qemu-img version " QEMU_PKGVERSION "\n"
           "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n");
}

static void print_format(void *opaque, const char *name)
{
    printf(" %s", name);
}

G_NORETURN void img_help(void)
{
    print_version();
    printf("usage: qemu-img [standard options] command [command options]\n"
           "QEMU disk image utility\n"
           "\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n"
           "    '-T', '--trace'      [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
           "                         specify tracing options\n"
           "\n"
           "Command syntax:\n"
           "%s\n%s\nSupported formats:", help_syntax, help_params);
    bdrv_iterate_format(print_format, NULL);
    printf("\n\n"
           "See <https://qemu.org/contribute/report-a-bug> for how to report bugs.\n"
           "More information on the QEMU project at <https://qemu.org>.\n");
    exit(EXIT_SUCCESS);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "trace", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmdname;
    int c;

    error_set_progname("qemu-img");
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        error_exit("Not enough arguments");
    }
    /* global options stop at the first non-option: the command */
    while ((c = getopt_long(argc, argv, "+:hVT:", long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'V':
            print_version();
            return EXIT_SUCCESS;
        case 'T':
            /* tracing is not implemented: accepted and ignored */
            break;
        }
    }
    if (optind >= argc) {
        return EXIT_SUCCESS;
    }
    cmdname = argv[optind];
    argc -= optind;
    argv += optind;
    optind = 0;       /* the subcommand parses its own argv from scratch */

    for (const ImgCmd *cmd = img_cmds; cmd->name; cmd++) {
        if (!strcmp(cmdname, cmd->name)) {
            return cmd->handler(argc, argv);
        }
    }
    error_exit("Command not found: %s", cmdname);
}
