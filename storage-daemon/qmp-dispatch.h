/*
 * QMP command dispatch: the one command table, checking a request's envelope
 * ("execute", "arguments", "id"), capability negotiation state, argument
 * validation, running the command, and building the reply object.
 */
#ifndef QSD_QMP_DISPATCH_H
#define QSD_QMP_DISPATCH_H

#include "qapi.h"

typedef struct Monitor Monitor;

/* The command needs the block layer (waits while a job's worker thread holds it). */
#define QCO_BLOCK 0x1

/*
 * A command: returns the value of "return" (a new node) or NULL with errp set.
 * @args is never NULL (an empty object when the client sent none).
 */
typedef JsonNode *(*QmpCommandFunc)(JsonObject *args, Monitor *mon, GError **errp);

typedef struct QmpCommand {
    const char *name;
    QmpCommandFunc fn;
    const QArg *args;          /* argument members; NULL: none accepted */
    const QArg *args_union;    /* or: the arguments are this union */
    unsigned flags;
} QmpCommand;

/* Every command, in the order query-commands lists them. */
extern const QmpCommand qmp_commands[];
const QmpCommand *qmp_find_command(const char *name);

typedef enum QmpDispatchResult {
    QMP_DISPATCH_REPLY,     /* *reply is set (it may be NULL: nothing to send) */
    QMP_DISPATCH_RETRY,     /* the block layer is busy: call again later */
} QmpDispatchResult;

/* A client's protocol state: qmp_capabilities moves it to command mode. */
typedef struct QmpSession {
    bool negotiated;
    bool oob;          /* the client enabled the "oob" capability */
} QmpSession;

/* Handle one request (or a parse error @perr for a malformed one) from @mon. */
QmpDispatchResult qmp_dispatch(Monitor *mon, JsonNode *req, GError *perr,
                               QmpSession *session, JsonNode **reply);

/* Build an error reply {"id": id, "error": {...}} (id may be NULL). */
JsonNode *qmp_error_reply(const GError *err, JsonNode *id);
/*
 * An error message as QMP shows it: without the hint QEMU's tools print after it
 * (a lock conflict's "Is another process using the image [...]?").
 */
char *qmp_error_desc(const char *message);

#endif
