#!/usr/bin/env python3
"""Writes docs/openapi.json, the OpenAPI 3.1 description of `psm serve`.

Run: python3 Scripts/make_openapi.py. ToolsTests/HTTPTests checks that the document's paths and methods
are exactly the routes the server registers (Server.HTTPServer.routes) and that each documented route
answers on a live server.
"""
import json, os

H = "0123456789abcdef0123456789abcdef"
M = "9ee7ea404e305d3101d71107aafd1c27"
O = "019ca8d72d0079b3896ccabdba8d5f28"
R = "01a2134fcd7078ce9f3192acf29b1034"
T = "2026-03-01T10:00:00.000000Z"

def s(t, d=None, **kw):
    x = {"type": t, **kw}
    if d: x["description"] = d
    return x

def obj(props, required=(), d=None):
    x = {"type": "object", "properties": props}
    if required: x["required"] = list(required)
    if d: x["description"] = d
    return x

def ref(n): return {"$ref": f"#/components/schemas/{n}"}
def opt(x): return {"anyOf": [x, {"type": "null"}]}

TIME = s("string", "ISO 8601 UTC, microseconds", format="date-time")
ID = s("string", "32 lower-case hexadecimal digits", pattern="^[0-9a-f]{32}$")

memory_example = {
    "id": M, "tier": "episodic", "type": "fact", "text": "I moved to Lyon in March and I work as a nurse there",
    "strength": 0.8125, "decay_per_day": 0.0222, "strength_at": T, "stability_s": 3888000, "recall_count": 1,
    "last_recalled": T, "emotional_weight": 0.1, "confidence": 0.9, "valid_from": T, "valid_to": None,
    "superseded_by": None, "supersedes": None, "consolidated_into": None, "sources": [], "observations": [O],
    "source_ids": ["msg-17"], "flags": [], "session": "s1", "speaker": "Alice", "created_at": T,
    "created_position": 2, "updated_position": 9, "reinforcements": 0, "weakenings": 0, "helped": 0,
    "irrelevant": 0, "corrected": 0, "archived_at": None, "pruned": False,
    "index_context": "8 March 2026 Where did you end up moving?",
}
node_example = {"kind": "memory", "id": M, "text": memory_example["text"], "tier": "episodic", "time": T,
                "sources": [{"kind": "observation", "id": O, "text": memory_example["text"], "source_id": "msg-17",
                             "session": "s1", "speaker": "Alice", "time": T, "sources": []}]}

schemas = {
    "Error": obj({"error": obj({"code": s("string", "stable machine code: bad_request, unauthorized, forbidden, not_found, conflict, erased, too_large, busy, unowned, corrupt, storage, model, internal"),
                                 "message": s("string", "what was wrong, naming the offending value")}, ["code", "message"])}, ["error"]),
    "Observation": obj({"text": s("string", "the turn's text (1 byte to 64 KiB)"), "session": s("string"), "speaker": s("string"), "role": s("string"),
                        "source_id": s("string", "the app's own id for the turn; reported by provenance"), "at": TIME,
                        "id": {**ID, "description": "event id for exactly-once retries"}}, ["text"]),
    "Batch": obj({"observations": s("array", "1 to 1000 observations, recorded in order", items=ref("Observation"))}, ["observations"]),
    "ObserveResult": obj({"observation": ID, "position": s("integer"), "kept": s("boolean"), "memory": opt(ID), "tier": opt(s("string")), "duplicate": s("boolean", "true when this id was already recorded (a retry)"),
                                 "relation": obj({"kind": s("string", enum=["reinforces", "refines", "supersedes"]), "memory": s("string", "the older memory", pattern="^[0-9a-f]{32}$"), "score": s("number")},
                                                 ["kind", "memory", "score"], "present when the new memory relates to an older one (the model's interference head, SPEC.md §12.7); absent otherwise and on a retry")},
                         ["observation", "position", "kept", "duplicate"]),
    "BatchResult": obj({"results": s("array", items=ref("ObserveResult"))}, ["results"]),
    "RecallRequest": obj({"query": s("string", "1 byte to 4 KiB"), "k": s("integer", minimum=1, maximum=100, default=5), "session": s("string"), "at": TIME,
                          "as_of": s("string", "journal position (digits) or ISO 8601 time: answer as of then, journal nothing"),
                          "peek": s("boolean", "answer now without journaling the recall (needs only memory:read)")}, ["query"]),
    "RecallResult": obj({"recall": opt(ID), "position": opt(s("integer")), "candidates": s("integer"),
        "time_cues": s("array", "The dates the query names (\"9 November 2022\", \"May 2023\"), which recall weighs as `time_match` (SPEC.md §12.7).", items=s("string")),
        "memories": s("array", items=obj({
        "memory": ID, "weight": s("number"), "text": s("string"), "tier": s("string"), "strength": s("number"), "valid": s("boolean"),
        "lexical": s("number"), "dense": s("number"), "emotional_weight": s("number", "The memory's emotional weight, 0…1, as the gate set it"),
        "source_ids": s("array", items=s("string")), "observations": s("array", items=ID)}))},
        ["candidates", "memories"]),
    "FeedbackRequest": obj({"recall": ID, "memory": ID, "kind": s("string", enum=["helped", "irrelevant", "corrected"]), "note": s("string"), "at": TIME}, ["recall", "memory", "kind"]),
    "FeedbackResult": obj({"position": s("integer"), "memory": ID, "strength": s("number"), "stability_s": s("integer")}, ["position", "memory", "strength", "stability_s"]),
    "SleepRequest": obj({"at": TIME}),
    "SleepResult": obj({"user": s("string"), "position": s("integer"), "decisions": s("object", "decision type → count", additionalProperties=s("integer"))}, ["user", "position", "decisions"]),
    "Memory": {"type": "object", "description": "one memory with all its metadata (see SPEC.md §11.2)", "additionalProperties": True,
               "required": ["id", "tier", "type", "text", "strength"], "properties": {"id": ID, "tier": s("string"), "type": s("string"), "text": s("string"), "strength": s("number")}},
    "ProvenanceNode": {"type": "object", "properties": {"kind": s("string", enum=["memory", "observation"]), "id": ID, "text": s("string"), "tier": s("string"),
                        "source_id": s("string"), "session": s("string"), "speaker": s("string"), "time": TIME, "sources": s("array", items=ref("ProvenanceNode"))}},
    "Provenance": obj({"memory": ref("ProvenanceNode"), "observations": s("array", items=ID), "source_ids": s("array", items=s("string")), "derived": s("array", items=ID),
                       "proofs": s("array", "with proof=true", items=obj({"observation": ID, "position": s("integer"), "leaf_index": s("integer"), "leaf_hash": s("string"),
                                                                          "tree_size": s("integer"), "root": s("string"), "path": s("array", items=s("string"))}))},
                      ["memory", "observations", "source_ids", "derived"]),
    "History": obj({"events": s("array", items=obj({"position": s("integer"), "time": TIME, "type": s("string"), "event_id": ID, "causation": opt(ID),
                                                    "model": opt(s("string")), "input_digest": opt(s("string")), "summary": s("string")}))}, ["events"]),
    "Tiers": {"type": "object", "required": ["tenant", "user", "events", "last_position", "sensory", "tiers", "counts"], "properties": {
        "tenant": s("string"), "user": s("string"), "events": s("integer"), "last_position": s("integer"), "sensory": s("array", items=s("object")),
        "tiers": s("object", "tier name → memories (at most limit each)", additionalProperties=s("array", items=ref("Memory"))),
        "counts": s("object", additionalProperties=s("integer")),
        "state_hash": s("string", "SHA-256 (hex) of the user's projection state (SPEC.md §15.5), the same on every node that has folded the same events; only without as_of")}},
    "JournalPage": obj({"events": s("array", items=obj({"position": s("integer"), "revision": s("integer"), "event_id": ID, "causation": opt(ID), "time": TIME,
                                                        "type": s("string"), "model": opt(s("string")), "input_digest": opt(s("string")), "summary": s("string"),
                                                        "payload_hex": s("string", "the canonical payload bytes (SPEC.md §11.1)")})),
                        "next": opt(s("integer", "revision to pass as from for the next page"))}, ["events"]),
    "Replay": obj({"user": s("string"), "commands": s("integer"), "checked": s("integer"), "divergent": s("integer"), "first_divergence": opt(s("object")), "model": s("string")},
                  ["user", "commands", "checked", "divergent", "model"]),
    "EraseRequest": obj({"reason": s("string"), "at": TIME}),
    "EraseResult": obj({"user": s("string"), "position": s("integer")}, ["user", "position"]),
}

def err(status, code, msg):
    return {"description": msg, "content": {"application/json": {"schema": ref("Error"), "example": {"error": {"code": code, "message": msg}}}}}

common = {"400": err(400, "bad_request", "memory id \"xyz\" is not 32 hexadecimal digits"),
          "401": err(401, "unauthorized", "the API key is unknown, malformed or revoked"),
          "403": err(403, "forbidden", "this route needs scope memory:write; the key has memory:read"),
          "404": err(404, "not_found", "not found: user acme/alice has no events"),
          "410": err(410, "erased", "user acme/alice was erased at position 120"),
          "413": err(413, "too_large", "request body of 2000000 bytes; the limit is 1048576"),
          "503": err(503, "busy", "more than 64 requests in flight; retry (on a cluster node also `unowned`: the user's partition is moving between nodes)"),
          "307": {"description": "cluster node (`psm serve --journal … --node …`): the user belongs to another node's partition; the same request goes to `Location` (resend the key)",
                  "headers": {"Location": {"schema": s("string"), "example": "http://10.0.0.2:8080/v1/users/alice/tiers"}}}}

USER = {"name": "user", "in": "path", "required": True, "schema": s("string"), "description": "a user of the key's tenant (1-200 bytes)"}
MEM = {"name": "memory", "in": "path", "required": True, "schema": ID}
def q(name, d, schema=None): return {"name": name, "in": "query", "required": False, "schema": schema or s("string"), "description": d}
AS_OF = q("as_of", "journal position (digits) or ISO 8601 time")
AT = q("at", "event time to compute strengths for (default: the user's last event time)")

def op(summary, scope, resp_schema, example, status="200", body=None, body_example=None, params=(), body_required=True, content="application/json", desc=None):
    o = {"summary": summary, "description": (desc + "\n\n" if desc else "") + f"Scope: `{scope}`.", "security": [{"bearer": []}], "parameters": list(params),
         "responses": {status: {"description": "success", "content": {content: {"schema": resp_schema, "example": example}}}, **common},
         "x-psm-scope": scope}
    if body:
        o["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": ref(body), "example": body_example}}}
    return o

obs_ex = {"text": "I moved to Lyon in March and I work as a nurse there", "session": "s1", "speaker": "Alice", "source_id": "msg-17", "at": "2026-03-01T10:00:00Z"}
obs_res = {"observation": O, "position": 2, "kept": True, "memory": M, "tier": "working", "duplicate": False}
recall_res = {"recall": R, "position": 4, "candidates": 12, "time_cues": [], "memories": [{"memory": M, "weight": 0.91, "text": obs_ex["text"], "tier": "episodic", "strength": 0.81,
                                                                         "valid": True, "lexical": 0.42, "dense": 0.63, "emotional_weight": 0.12, "source_ids": ["msg-17"], "observations": [O]}]}
paths = {
    "/v1/health": {"get": {"summary": "Liveness (no key needed)", "security": [], "responses": {"200": {"description": "the server is up", "content": {"application/json": {
        "schema": obj({"status": s("string"), "node": s("string", "cluster node only: its name"), "partitions": s("string", "cluster node only: partitions served here"),
                       "partitions_total": s("string", "cluster node only")}), "example": {"status": "ok"}}}}}}},
    "/v1/users/{user}/observations": {"parameters": [USER], "post": op("Record one observation; the gate decides whether and how it is remembered", "memory:write", ref("ObserveResult"), obs_res, "201", "Observation", obs_ex,
        desc="The observation and the model's decisions are one atomic journal append. Retrying with the same `id` is exactly-once.")},
    "/v1/users/{user}/observations/batch": {"parameters": [USER], "post": op("Record up to 1000 observations in order", "memory:write", ref("BatchResult"), {"results": [obs_res]}, "201", "Batch", {"observations": [obs_ex]},
        desc="All are checked before the first is recorded. Each is its own atomic append; on a failure part-way the error says how many were recorded, and a retry with the same ids is exactly-once.")},
    "/v1/users/{user}/recall": {"parameters": [USER], "post": op("Recall memories for a query, best first", "memory:read (memory:write when journaled)", ref("RecallResult"), recall_res, "200", "RecallRequest",
        {"query": "where does Alice live?", "k": 5}, desc="Journals the recall request and what was surfaced unless `peek` or `as_of` is given.")},
    "/v1/users/{user}/feedback": {"parameters": [USER], "post": op("Say whether a recalled memory helped", "memory:write", ref("FeedbackResult"), {"position": 7, "memory": M, "strength": 0.93, "stability_s": 5184000}, "201",
        "FeedbackRequest", {"recall": R, "memory": M, "kind": "helped"})},
    "/v1/users/{user}/sleep": {"parameters": [USER], "post": op("Sleep-time reorganisation for the user", "memory:write", ref("SleepResult"), {"user": "alice", "position": 40, "decisions": {"encoded": 12, "consolidated": 1}},
        "200", "SleepRequest", {"at": "2026-03-02T03:00:00Z"}, body_required=False)},
    "/v1/users/{user}/tiers": {"parameters": [USER], "get": op("The user's memories by tier", "memory:read", ref("Tiers"),
        {"tenant": "acme", "user": "alice", "events": 9, "last_position": 9, "sensory": [], "tiers": {"episodic": [memory_example]}, "counts": {"sensory": 0, "working": 0, "episodic": 1, "semantic": 0, "archival": 0}, "state_hash": "5c1e…"},
        params=[AS_OF, AT, q("limit", "memories per tier (1-100000, default 20)", s("integer"))])},
    "/v1/users/{user}/memories/{memory}": {"parameters": [USER, MEM], "get": op("One memory with all its metadata", "memory:read", ref("Memory"), memory_example, params=[AS_OF, AT])},
    "/v1/users/{user}/memories/{memory}/history": {"parameters": [USER, MEM], "get": op("Every event that touched the memory, oldest first", "memory:read", ref("History"),
        {"events": [{"position": 3, "time": T, "type": "gated", "event_id": H, "causation": O, "model": "ab" * 32, "input_digest": "cd" * 32, "summary": "kept in working as fact, strength 1.00, stability 45.0 d"}]})},
    "/v1/users/{user}/memories/{memory}/provenance": {"parameters": [USER, MEM], "get": op("Where the memory came from, down to the observed turns", "memory:read", ref("Provenance"),
        {"memory": node_example, "observations": [O], "source_ids": ["msg-17"], "derived": []},
        params=[AS_OF, q("proof", "true: add each source observation's inclusion proof in the tenant's Merkle tree (SPEC.md §8.1)", s("boolean"))])},
    "/v1/users/{user}/export": {"parameters": [USER], "get": op("Every memory of every tier with metadata and provenance, one JSON object per line", "memory:read",
        obj({"memory": ref("Memory"), "provenance": ref("Provenance")}), {"memory": memory_example, "provenance": {"memory": node_example, "observations": [O], "source_ids": ["msg-17"], "derived": []}},
        content="application/x-ndjson")},
    "/v1/users/{user}/journal": {"parameters": [USER], "get": op("A page of the user's journal stream, decoded, for auditors", "journal:read", ref("JournalPage"),
        {"events": [{"position": 2, "revision": 0, "event_id": O, "causation": None, "time": T, "type": "observation", "model": None, "input_digest": None, "summary": "“I moved to Lyon…”", "payload_hex": "01…"}], "next": 1},
        params=[q("from", "first revision (default 0)", s("integer")), q("limit", "events per page (1-1000, default 100)", s("integer"))])},
    "/v1/users/{user}/replay-verify": {"parameters": [USER], "post": op("Re-run the user's decisions and compare them with the journal", "journal:read", ref("Replay"),
        {"user": "alice", "commands": 4, "checked": 9, "divergent": 0, "first_divergence": None, "model": "ab" * 32})},
    "/v1/users/{user}": {"parameters": [USER], "delete": op("Erase the user (an erasure request in the journal; reads answer 410 afterwards)", "admin", ref("EraseResult"), {"user": "alice", "position": 120},
        "200", "EraseRequest", {"reason": "user asked"}, body_required=False)},
}

doc = {
    "openapi": "3.1.0",
    "info": {"title": "PSM HTTP API", "version": "1",
             "description": "Memory for LLM agents: `psm serve`. JSON over HTTP under /v1. Every route but /v1/health needs `Authorization: Bearer psm_…` (psm keys create); the key alone decides the tenant, so user ids in paths are users of that tenant. Errors are `{\"error\": {\"code\", \"message\"}}`. Limits: body 1 MiB (--max-body), batch 1000, text 64 KiB, query 4 KiB, k ≤ 100, 64 requests in flight (--max-concurrent; 503 beyond)."},
    "servers": [{"url": "http://127.0.0.1:8080"}],
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "psm_<16 hex id>_<64 hex secret>"}}, "schemas": schemas},
    "paths": paths,
}
out = os.path.join(os.path.dirname(__file__), "..", "docs", "openapi.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
print("wrote", os.path.normpath(out))
