/*
 * Throttle groups: the "throttle-group" objects (--object throttle-group,id=...
 * in the tools, object-add in the daemon; both through util/objects.c, whose
 * registry knows the type as throttle_group_type) that
 * "throttle" nodes name. A group
 * holds QEMU's I/O limits (bps and iops, total or read/write, each with a burst
 * rate and length, and iops-size) and the leaky buckets that enforce them for
 * every node in the group together: water is what was transferred, it leaks at
 * the limit's rate, and a request waits (sleeps: our I/O is synchronous) until
 * no bucket it pours into is over its size, then adds its water. A bucket's size
 * is the burst rate times the burst length, or a tenth of a second at the
 * average rate without a burst; with a burst rate a second bucket of a tenth of
 * a second at that rate keeps bursts at it.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/throttle-groups.h"
#include <time.h>

#define THROTTLE_VALUE_MAX 1000000000000000ULL

enum { BKT_BPS_TOTAL, BKT_BPS_READ, BKT_BPS_WRITE,
       BKT_IOPS_TOTAL, BKT_IOPS_READ, BKT_IOPS_WRITE, BKT__MAX };

/* the limit names, as "limits" members (x-NAME as flat properties) */
static const char *const bucket_names[BKT__MAX] = {
    "bps-total", "bps-read", "bps-write", "iops-total", "iops-read", "iops-write",
};

typedef struct LeakyBucket {
    uint64_t avg;           /* units per second; 0: no limit */
    uint64_t max;           /* burst rate; 0: none */
    uint64_t burst_length;  /* seconds */
    double level;           /* water in the bucket */
    double burst_level;     /* water in the burst bucket */
} LeakyBucket;

struct ThrottleGroup {
    char *id;
    int refcnt;             /* the nodes using it */
    bool limited;           /* any limit set: else requests pass unaccounted */
    LeakyBucket buckets[BKT__MAX];
    uint64_t iops_size;
    double last;            /* when the buckets last leaked (seconds) */
};

static GHashTable *groups;  /* id -> ThrottleGroup */

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    struct timespec ts = { .tv_sec = (time_t)s,
                           .tv_nsec = (long)((s - (time_t)s) * 1e9) };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        /* the rest of the wait */
    }
}

/* ---- configuration ---- */

/* Read a non-negative integer property @key (flat x-NAME or limits.NAME). */
static int get_limit(JsonObject *props, JsonObject *limits, const char *name,
                     const char *suffix, uint64_t *out, GError **errp)
{
    g_autofree char *flat = g_strdup_printf("x-%s%s", name, suffix);
    g_autofree char *key = g_strdup_printf("%s%s", name, suffix);
    JsonObject *src = props;
    const char *k = flat;
    GError *local = NULL;
    int64_t v;

    if (limits && opts_has(limits, key)) {
        src = limits;
        k = key;
    } else if (!opts_has(props, flat)) {
        *out = 0;
        return 0;
    }
    v = opts_get_int(src, k, 0, &local);
    if (local) {
        g_clear_error(&local);
        error_setg(errp, "Parameter '%s' expects integer", k);
        return -EINVAL;
    }
    if (v < 0 && src == limits) {
        *out = UINT64_MAX;      /* "limits" members are unsigned: out of range */
        return 0;
    }
    if (v < 0) {
        error_setg(errp, "Property values cannot be negative");
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* QEMU's checks of a set of limits, in its order and words. */
static int check_config(ThrottleGroup *tg, bool *has_length, GError **errp)
{
    LeakyBucket *b = tg->buckets;

    for (int i = 0; i < 2; i++) {
        int base = i ? BKT_IOPS_TOTAL : BKT_BPS_TOTAL;
        if ((b[base].avg && (b[base + 1].avg || b[base + 2].avg)) ||
            (b[base].max && (b[base + 1].max || b[base + 2].max))) {
            error_setg(errp, "bps/iops/max total values and read/write values cannot "
                       "be used at the same time");
            return -EINVAL;
        }
    }
    for (int i = 0; i < BKT__MAX; i++) {
        if (b[i].avg > THROTTLE_VALUE_MAX || b[i].max > THROTTLE_VALUE_MAX) {
            error_setg(errp, "bps/iops/max values must be within [0, %llu]",
                       THROTTLE_VALUE_MAX);
            return -EINVAL;
        }
        if (has_length[i] && !b[i].burst_length) {
            error_setg(errp, "the burst length cannot be 0");
            return -EINVAL;
        }
        if (has_length[i] && !b[i].max) {
            error_setg(errp, "burst length set without burst rate");
            return -EINVAL;
        }
        if (b[i].max && !b[i].avg) {
            error_setg(errp, "bps_max/iops_max require corresponding bps/iops values");
            return -EINVAL;
        }
        if (b[i].max && b[i].max < b[i].avg) {
            error_setg(errp, "bps_max/iops_max cannot be lower than bps/iops");
            return -EINVAL;
        }
    }
    if (tg->iops_size && !b[BKT_IOPS_TOTAL].avg && !b[BKT_IOPS_READ].avg &&
        !b[BKT_IOPS_WRITE].avg) {
        error_setg(errp, "iops size requires an iops value to be set");
        return -EINVAL;
    }
    return 0;
}

static const char *const group_props[] = {
    "qom-type", "id", "limits", "x-iops-size", NULL,
};

static bool known_prop(const char *key)
{
    if (g_strv_contains(group_props, key)) {
        return true;
    }
    for (int i = 0; i < BKT__MAX; i++) {
        const char *n = bucket_names[i];
        if (g_str_has_prefix(key, "x-") && g_str_has_prefix(key + 2, n) &&
            (!key[2 + strlen(n)] || !strcmp(key + 2 + strlen(n), "-max") ||
             !strcmp(key + 2 + strlen(n), "-max-length"))) {
            return true;
        }
    }
    return false;
}

int throttle_group_add(const char *id, JsonObject *props, GError **errp)
{
    g_autofree ThrottleGroup *tg = g_new0(ThrottleGroup, 1);
    JsonObject *limits = opts_get_object(props, "limits");
    bool has_length[BKT__MAX] = { false };
    GList *members = json_object_get_members(props);

    for (GList *l = members; l; l = l->next) {
        if (!known_prop(l->data)) {
            error_setg(errp, "Parameter '%s' is unexpected", (char *)l->data);
            g_list_free(members);
            return -EINVAL;
        }
    }
    g_list_free(members);
    members = limits ? json_object_get_members(limits) : NULL;
    for (GList *l = members; l; l = l->next) {
        g_autofree char *x = g_strdup_printf("x-%s", (char *)l->data);
        if (!known_prop(x)) {
            error_setg(errp, "Parameter 'limits.%s' is unexpected", (char *)l->data);
            g_list_free(members);
            return -EINVAL;
        }
    }
    g_list_free(members);
    if (!groups) {
        groups = g_hash_table_new(g_str_hash, g_str_equal);
    }
    for (int i = 0; i < BKT__MAX; i++) {
        LeakyBucket *b = &tg->buckets[i];
        g_autofree char *lkey = g_strdup_printf("%s-max-length", bucket_names[i]);
        g_autofree char *xkey = g_strdup_printf("x-%s", lkey);

        has_length[i] = opts_has(props, xkey) || (limits && opts_has(limits, lkey));
        if (get_limit(props, limits, bucket_names[i], "", &b->avg, errp) < 0 ||
            get_limit(props, limits, bucket_names[i], "-max", &b->max, errp) < 0 ||
            get_limit(props, limits, bucket_names[i], "-max-length",
                      &b->burst_length, errp) < 0) {
            return -EINVAL;
        }
        if (!has_length[i]) {
            b->burst_length = 1;
        }
    }
    if (get_limit(props, limits, "iops-size", "", &tg->iops_size, errp) < 0 ||
        check_config(tg, has_length, errp) < 0) {
        return -EINVAL;
    }
    if (g_hash_table_contains(groups, id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type "
                   "'container')", id);
        return -EEXIST;
    }
    for (int i = 0; i < BKT__MAX; i++) {
        tg->limited |= tg->buckets[i].avg != 0;
    }
    tg->id = g_strdup(id);
    tg->last = now_seconds();
    g_hash_table_insert(groups, tg->id, tg);
    tg = NULL;
    return 0;
}

int throttle_group_del(const char *id, GError **errp)
{
    ThrottleGroup *tg = groups ? g_hash_table_lookup(groups, id) : NULL;

    if (!tg) {
        return -ENOENT;
    }
    if (tg->refcnt) {
        error_setg(errp, "object '%s' is in use, can not be deleted", id);
        return -EBUSY;
    }
    g_hash_table_remove(groups, id);
    g_free(tg->id);
    g_free(tg);
    return 0;
}

/* The registry's object is a token: the group lives in this file's table. */
static void *throttle_group_create(const char *id, JsonObject *props, GError **errp)
{
    return throttle_group_add(id, props, errp) < 0 ? NULL : (void *)&throttle_group_type;
}

static int throttle_group_destroy(void *obj, const char *id, GError **errp)
{
    int ret = throttle_group_del(id, errp);

    return ret == -ENOENT ? 0 : ret;
}

/* "--object throttle-group,help", QEMU's list */
static const char *const throttle_group_prop_help[] = {
    "limits=<ThrottleLimits>",
    "x-bps-read-max-length=<int>", "x-bps-read-max=<int>", "x-bps-read=<int>",
    "x-bps-total-max-length=<int>", "x-bps-total-max=<int>", "x-bps-total=<int>",
    "x-bps-write-max-length=<int>", "x-bps-write-max=<int>", "x-bps-write=<int>",
    "x-iops-read-max-length=<int>", "x-iops-read-max=<int>", "x-iops-read=<int>",
    "x-iops-size=<int>",
    "x-iops-total-max-length=<int>", "x-iops-total-max=<int>", "x-iops-total=<int>",
    "x-iops-write-max-length=<int>", "x-iops-write-max=<int>", "x-iops-write=<int>",
    NULL,
};

const UserObjectType throttle_group_type = {
    .name = "throttle-group",
    .prop_help = throttle_group_prop_help,
    .create = throttle_group_create,
    .destroy = throttle_group_destroy,
};

ThrottleGroup *throttle_group_ref(const char *id)
{
    ThrottleGroup *tg = groups ? g_hash_table_lookup(groups, id) : NULL;

    if (tg) {
        tg->refcnt++;
    }
    return tg;
}

void throttle_group_unref(ThrottleGroup *tg)
{
    if (tg) {
        tg->refcnt--;
    }
}

const char *throttle_group_name(ThrottleGroup *tg)
{
    return tg->id;
}

/* ---- enforcing ---- */

static void leak(ThrottleGroup *tg, double now)
{
    double dt = now - tg->last;

    if (dt <= 0) {
        return;
    }
    for (int i = 0; i < BKT__MAX; i++) {
        LeakyBucket *b = &tg->buckets[i];
        b->level = MAX(0.0, b->level - b->avg * dt);
        b->burst_level = MAX(0.0, b->burst_level - b->max * dt);
    }
    tg->last = now;
}

/* How long until bucket @b has room again (0: now). */
static double bucket_wait(LeakyBucket *b)
{
    double size, wait = 0;

    if (!b->avg) {
        return 0;
    }
    size = b->max ? (double)b->max * b->burst_length : b->avg / 10.0;
    if (b->level > size) {
        wait = (b->level - size) / b->avg;
    }
    if (b->max && b->burst_level > b->max / 10.0) {
        wait = MAX(wait, (b->burst_level - b->max / 10.0) / b->max);
    }
    return wait;
}

void throttle_group_account(ThrottleGroup *tg, bool is_write, uint64_t bytes)
{
    int bps[2] = { BKT_BPS_TOTAL, is_write ? BKT_BPS_WRITE : BKT_BPS_READ };
    int iops[2] = { BKT_IOPS_TOTAL, is_write ? BKT_IOPS_WRITE : BKT_IOPS_READ };
    double ops = 1.0;

    if (!tg->limited) {
        return;
    }
    if (tg->iops_size && bytes > tg->iops_size) {
        ops = (double)bytes / tg->iops_size;
    }
    for (;;) {
        double wait = 0;

        leak(tg, now_seconds());
        for (int i = 0; i < 2; i++) {
            wait = MAX(wait, bucket_wait(&tg->buckets[bps[i]]));
            wait = MAX(wait, bucket_wait(&tg->buckets[iops[i]]));
        }
        if (wait <= 0) {
            break;
        }
        sleep_seconds(wait);
    }
    for (int i = 0; i < 2; i++) {
        tg->buckets[bps[i]].level += bytes;
        tg->buckets[bps[i]].burst_level += bytes;
        tg->buckets[iops[i]].level += ops;
        tg->buckets[iops[i]].burst_level += ops;
    }
}
