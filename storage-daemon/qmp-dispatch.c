/*
 * QMP request handling: checks the envelope of a request as QEMU does ("QMP input
 * member 'x' is unexpected", "QMP input lacks member 'execute'"), enforces capability
 * negotiation, looks the command up in the table, validates its arguments against
 * the command's schema, runs it (or asks to be retried while a job holds the block
 * layer) and builds {"return": ..., "id": ...} or {"id": ..., "error": {...}}.
 */
#include "qmp-dispatch.h"
#include "daemon.h"

const QmpCommand *qmp_find_command(const char *name)
{
    for (const QmpCommand *c = qmp_commands; c->name; c++) {
        if (!strcmp(c->name, name)) {
            return c;
        }
    }
    return NULL;
}

char *qmp_error_desc(const char *message)
{
    const char *hint = strstr(message, "\nIs another process using the image [");

    return hint ? g_strndup(message, hint - message) : g_strdup(message);
}

JsonNode *qmp_error_reply(const GError *err, JsonNode *id)
{
    g_autofree char *desc = qmp_error_desc(err->message);
    JsonObject *reply = json_object_new();
    JsonObject *e = json_object_new();

    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    json_object_set_string_member(e, "class", qmp_error_class(err));
    json_object_set_string_member(e, "desc", desc);
    json_object_set_object_member(reply, "error", e);
    return qjson_object_node(reply);
}

static JsonNode *success_reply(JsonNode *ret, JsonNode *id)
{
    JsonObject *reply = json_object_new();

    json_object_set_member(reply, "return", ret);
    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    return qjson_object_node(reply);
}

/*
 * Check the request's own members; returns the command name or NULL. *oob is set
 * for "exec-oob" requests (accepted once the client enabled the capability).
 */
static const char *check_envelope(JsonObject *req, bool oob_enabled, bool *oob,
                                  GError **errp)
{
    GList *keys = json_object_get_members(req);
    const char *name = NULL;
    bool ok = true;

    *oob = false;
    for (GList *l = keys; l && ok; l = l->next) {
        const char *key = l->data;
        JsonNode *n = json_object_get_member(req, key);

        if (!strcmp(key, "exec-oob") && oob_enabled) {
            if (!JSON_NODE_HOLDS_VALUE(n) ||
                json_node_get_value_type(n) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member 'exec-oob' must be a string");
                ok = false;
            } else {
                name = json_node_get_string(n);
                *oob = true;
            }
        } else if (!strcmp(key, "execute")) {
            if (!JSON_NODE_HOLDS_VALUE(n) ||
                json_node_get_value_type(n) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member 'execute' must be a string");
                ok = false;
            } else {
                name = json_node_get_string(n);
            }
        } else if (!strcmp(key, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(n)) {
                error_setg(errp, "QMP input member 'arguments' must be an object");
                ok = false;
            }
        } else if (strcmp(key, "id")) {
            /* includes exec-oob before the client enabled "oob" */
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            ok = false;
        }
    }
    g_list_free(keys);
    if (ok && *oob && json_object_has_member(req, "execute")) {
        error_setg(errp, "QMP input member 'execute' clashes with 'exec-oob'");
        return NULL;
    }
    if (ok && !name) {
        error_setg(errp, "QMP input lacks member 'execute'");
    }
    return ok ? name : NULL;
}

static bool check_args(const QmpCommand *cmd, JsonObject *args, GError **errp)
{
    if (cmd->args_union) {
        return qapi_check_union(args, cmd->args_union, NULL, errp);
    }
    return qapi_check(args, cmd->args, NULL, errp);
}

QmpDispatchResult qmp_dispatch(Monitor *mon, JsonNode *req, GError *perr,
                               QmpSession *session, JsonNode **reply)
{
    g_autoptr(GError) err = NULL;
    JsonObject *obj, *args;
    g_autoptr(JsonObject) empty = NULL;
    JsonNode *id, *ret;
    const QmpCommand *cmd;
    const char *name;
    bool oob;

    *reply = NULL;
    if (perr) {
        *reply = qmp_error_reply(perr, NULL);
        return QMP_DISPATCH_REPLY;
    }
    if (!JSON_NODE_HOLDS_OBJECT(req)) {
        error_setg(&err, "QMP input must be a JSON object");
        *reply = qmp_error_reply(err, NULL);
        return QMP_DISPATCH_REPLY;
    }
    obj = json_node_get_object(req);
    id = json_object_get_member(obj, "id");
    name = check_envelope(obj, session->oob, &oob, &err);
    if (!name) {
        *reply = qmp_error_reply(err, id);
        return QMP_DISPATCH_REPLY;
    }
    if (!session->negotiated && strcmp(name, "qmp_capabilities")) {
        g_set_error(&err, QMP_ERROR_COMMAND_NOT_FOUND, 0,
                    "Expecting capabilities negotiation with 'qmp_capabilities'");
    } else if (session->negotiated && !strcmp(name, "qmp_capabilities")) {
        g_set_error(&err, QMP_ERROR_COMMAND_NOT_FOUND, 0,
                    "Capabilities negotiation is already complete, command ignored");
    }
    cmd = err ? NULL : qmp_find_command(name);
    if (!err && !cmd) {
        g_set_error(&err, QMP_ERROR_COMMAND_NOT_FOUND, 0,
                    "The command %s has not been found", name);
    } else if (!err && oob) {
        /* none of our commands may jump the queue */
        error_setg(&err, "The command %s does not support OOB", name);
    }
    if (err) {
        *reply = qmp_error_reply(err, id);
        return QMP_DISPATCH_REPLY;
    }

    args = json_object_has_member(obj, "arguments") ?
           json_object_get_object_member(obj, "arguments") : NULL;
    if (!args) {
        args = empty = json_object_new();
    }
    if (!check_args(cmd, args, &err)) {
        *reply = qmp_error_reply(err, id);
        return QMP_DISPATCH_REPLY;
    }
    if (job_settling() || ((cmd->flags & QCO_BLOCK) && !block_lock_try())) {
        return QMP_DISPATCH_RETRY;
    }
    ret = cmd->fn(args, mon, &err);
    if (cmd->flags & QCO_BLOCK) {
        block_unlock();
    }
    if (!ret) {
        assert(err);
        *reply = qmp_error_reply(err, id);
        return QMP_DISPATCH_REPLY;
    }
    if (!strcmp(name, "qmp_capabilities")) {
        JsonArray *enable = json_object_has_member(args, "enable") ?
                            json_object_get_array_member(args, "enable") : NULL;
        session->negotiated = true;
        session->oob = enable && json_array_get_length(enable) > 0;
    }
    *reply = success_reply(ret, id);
    return QMP_DISPATCH_REPLY;
}
