"""Atelier's OpenAPI 3.1 document: the routes and their responses (this file and openapi_dialects.py); writes
Sources/AtelierHTTP/OpenAPIDocument.swift. Every schema built from the catalog (RunInput, RunForm,
ReplicateInput, ModelInput_<id>, the model names, OpenAI's image bodies) is added by the server when it starts, from
the models it loaded (Sources/AtelierHTTP/OpenAPI/); `atelier openapi` prints the whole document.

Run from the repository root: python3 docs/tools/openapi_source.py
"""
import json
from pathlib import Path
import sys
sys.path.insert(0, str(Path(__file__).resolve().parent))
import openapi_dialects  # noqa: E402

# Text without control characters but tab and line feed (TextRules.swift).
TEXT = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"
check_input = {"type": "object", "additionalProperties": False, "required": ["request_id"],
               "properties": {"request_id": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 9007199254740991},
                                                       {"type": "string", "pattern": "^ *[0-9]{1,18} *$"}]},
                              "api_key": {"type": "string", "pattern": TEXT}}}
run_data = {
  "type": "object",
  "description": "A run. While it is queued or running, /run answers with request_id and status only; /check and the event stream have the rest.",
  "required": ["request_id", "status"],
  "properties": {
    "request_id": {"type": "integer"},
    "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "canceled"]},
    "model_id": {"type": "string"},
    "output": {"oneOf": [{"type": "string", "format": "uri"}, {"type": "array", "items": {"type": "string", "format": "uri"}},
                         {"type": "null"}],
               "description": "The image URL (an array when num_outputs > 1); null once output_expired is set."},
    "output_type": {"type": "string", "enum": ["image"]},
    "seed": {"type": "integer"},
    "seeds": {"type": "array", "items": {"type": "integer"}},
    "width": {"type": "integer"}, "height": {"type": "integer"},
    "path": {"type": "string", "enum": ["standard", "fast"]},
    "path_reason": {"type": "string"},
    "timings": {"type": "object", "properties": {"inference_ms": {"type": "number"}, "encode_ms": {"type": "number"}, "total_ms": {"type": "number"}}},
    "safety_checker": {"type": "object", "required": ["checker", "ran", "dropped", "note"],
                       "properties": {"checker": {"type": ["string", "null"]}, "ran": {"type": "boolean"},
                                      "dropped": {"type": "integer"}, "note": {"type": "string"}}},
    "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    "progress": {"type": "object", "required": ["step", "total"], "properties": {"step": {"type": "integer"}, "total": {"type": "integer"}}},
    "queue_position": {"type": "integer", "minimum": 0, "description": "Runs ahead of this one while it is queued."},
    "attempts": {"type": "integer", "minimum": 0, "description": "More than 1 when a worker died under the run and it was run again."},
    "created_at": {"type": "string", "format": "date-time"},
    "started_at": {"type": "string", "format": "date-time"},
    "completed_at": {"type": "string", "format": "date-time"},
    "input": {"type": "object", "description": "Every parameter as the run uses it: defaults filled in, the seed picked."},
    "cost": {"$ref": "#/components/schemas/Cost"},
    "output_expired": {"type": "object", "required": ["code", "expired_at", "message"],
                       "description": "Set when the server's output retention (--output-retention) deleted the run's images: output is null; the run and its charge stay.",
                       "properties": {"code": {"const": "output_expired"}, "expired_at": {"type": "string", "format": "date-time"},
                                      "message": {"type": "string"}}},
  },
}
error_body = {
  "type": "object", "required": ["success", "message", "error"],
  "properties": {
    "success": {"const": False},
    "message": {"type": "string", "description": "What is wrong and how to fix it."},
    "error": {"type": "object", "required": ["code"], "properties": {
        "code": {"type": "string"}, "param": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "required": ["param", "code", "message"],
                    "properties": {"param": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}}}},
    "data": {"$ref": "#/components/schemas/RunData"},
  },
}
def err(desc): return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
def bodies(ref, form_ref=None):
    # Form and multipart bodies carry text only: no null, numbers or booleans as such (RunForm).
    form_ref = form_ref or ref
    return {"required": True, "content": {
        "application/json": {"schema": {"$ref": ref}},
        "application/x-www-form-urlencoded": {"schema": {"$ref": form_ref}},
        "multipart/form-data": {"schema": {"$ref": form_ref}}}}

ok_run = {"description": "The run: finished (output set), failed is reported as an error, or still queued/running when the wait window ended.",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunResponse"}}}}
ok_run_linked = {**ok_run, "links": {"CheckRun": {"operationId": "checkGet",
                                                   "parameters": {"request_id": "$response.body#/data/request_id"},
                                                   "description": "The run's status and outcome, later."}}}
common = {"400": err("A parameter or the body is invalid; nothing was queued."),
          "401": err("Missing, unknown or revoked API key."),
          "429": err("Too many requests for this API key, or too many runs in progress for its account; see Retry-After."),
          "413": err("The body is larger than the limit."),
          "415": err("A Content-Type other than JSON, form or multipart."),
          "503": err("The database is unreachable for the moment (database_unavailable); see Retry-After.")}
doc = {
  "openapi": "3.1.0",
  "info": {"title": "Atelier", "version": "1.0.0",
           "description": "Self-hosted image generation with the hosted service's /api/v4/run contract. See docs/api.md."},
  "servers": [{"url": "/"}],
  "security": [{"bearerAuth": []}],
  "paths": {
    "/api/v4/run": {"post": {
        "operationId": "run", "summary": "Run a model",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "description": "Same key and same request: the first run's answer, never a second run or charge (kept 48 h, per API key).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}],
        "requestBody": bodies("#/components/schemas/RunInput", "#/components/schemas/RunForm"),
        "responses": {"200": ok_run_linked, **common,
                      "402": err("The account's available credit does not cover price × num_outputs; nothing was queued."),
                      "409": err("The first request with this Idempotency-Key is still running."),
                      "422": err("Every image was flagged by the safety checker, or the Idempotency-Key was used with a different request."),
                      "500": err("The generation failed."),
                      "503": err("The run was lost to worker crashes or a timeout (nothing was made), or the server is shutting down (shutting_down: nothing was queued), or the database is unreachable (database_unavailable), or an input image could not be stored (storage_unavailable); see Retry-After.")}}},
    "/api/v4/check": {
        "get": {"operationId": "checkGet", "summary": "A run's status and outcome",
                "parameters": [{"name": "request_id", "in": "query", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}],
                "responses": {"200": ok_run, "400": common["400"], "401": common["401"], "429": common["429"], "503": common["503"],
                              "404": err("No such run for this key's account.")}},
        "post": {"operationId": "checkPost", "summary": "A run's status and outcome",
                 "requestBody": bodies("#/components/schemas/CheckInput"),
                 "responses": {"200": ok_run, **common, "404": err("No such run for this key's account.")}}},
    "/api/v4/cancel": {"post": {
        "operationId": "cancel", "summary": "Cancel a run: a queued run never starts, a running one stops at its next step; nothing is charged",
        "requestBody": bodies("#/components/schemas/CheckInput"),
        "responses": {"200": ok_run, **common, "404": err("No such run for this key's account."),
                      "409": err("The run already succeeded or failed; there is nothing to cancel.")}}},
    "/api/v4/requests/{id}/events": {"get": {
        "operationId": "events", "summary": "A run's life as Server-Sent Events: queued, started, progress, then completed, failed or canceled",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}],
        "responses": {"200": {"description": "text/event-stream; the final event's data is the /check object.",
                              "content": {"text/event-stream": {"schema": {
                                  "type": "object", "required": ["event", "data"],
                                  "properties": {"id": {"type": "string"}, "data": {"type": "string"},
                                                 "event": {"type": "string", "enum": ["queued", "started", "progress", "completed", "failed", "canceled"]}}}}}},
                      "400": common["400"], "401": common["401"], "429": common["429"], "503": common["503"],
                      "404": err("No such run for this key's account.")}}},
    "/api/v4/models": {"get": {
        "operationId": "models", "summary": "The catalog: models, prices and parameters",
        "responses": {"200": {"description": "Every model.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["success", "data"], "properties": {"success": {"const": True},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}}}}},
            "401": common["401"], "429": common["429"]}}},
    "/api/v4/models/{id}": {"get": {
        "operationId": "model", "summary": "One model",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The model.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["success", "data"], "properties": {"success": {"const": True},
            "data": {"$ref": "#/components/schemas/Model"}}}}}},
            "401": common["401"], "404": err("No such model."), "429": common["429"]}}},
    "/api/v4/account": {"get": {
        "operationId": "account", "summary": "The key's account: balance, open holds, available credit, spend per model",
        "parameters": [{"name": "from", "in": "query", "schema": {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}},
                       {"name": "to", "in": "query", "schema": {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}}],
        "responses": {"200": {"description": "Amounts in minor units (cents) and for people.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["success", "data"], "properties": {"success": {"const": True},
            "data": {"type": "object", "required": ["account", "currency", "balance", "held", "available"], "properties": {
                "account": {"type": "string"}, "currency": {"type": "string"}, "balance": {"type": "integer"},
                "held": {"type": "integer"}, "available": {"type": "integer"}, "display": {"type": "object"},
                "spend": {"type": "object"},
                "keys": {"type": "array", "description": "The account's API keys by prefix, newest first.",
                         "items": {"type": "object", "required": ["prefix", "created_at"], "properties": {
                             "prefix": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
                             "revoked_at": {"type": "string", "format": "date-time"}}}}}}}}}}},
            "400": common["400"], "401": common["401"], "429": common["429"]}}},
    "/api/v4/usage": {"get": {
        "operationId": "usage", "summary": "Charged runs of the key's account, newest first, paged",
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "string", "pattern": "^\\+?0*(?:[1-9]|[1-9][0-9]{1}|1[0-9][0-9]{1}|200)$"}},
                       {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^\\+?0*[1-9][0-9]{0,17}$"}}],
        "responses": {"200": {"description": "One page.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["success", "data"], "properties": {"success": {"const": True},
            "data": {"type": "object", "required": ["items", "currency"], "properties": {
                "currency": {"type": "string"}, "next_cursor": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object",
                          "required": ["request_id", "model_id", "images", "amount", "charged_at"], "properties": {
                    "request_id": {"type": "integer"}, "model_id": {"type": "string"}, "images": {"type": "integer"},
                    "amount": {"type": "integer"}, "charged_at": {"type": "string", "format": "date-time"}}}}}}}}}}},
            "400": common["400"], "401": common["401"], "429": common["429"]}}},
    "/storage/outputs/{name}": {"get": {
        "operationId": "output", "summary": "A generated image", "security": [],
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
                        "description": "One range, bytes=A-B or bytes=A-, honoured when images are in an S3 bucket."}],
        "responses": {"200": {"description": "The image; names are random and never reused, so it is cached for good.",
                              "content": {"image/webp": {}, "image/jpeg": {}, "image/png": {}}},
                      "206": {"description": "The requested range of the image (images in an S3 bucket).",
                              "content": {"image/webp": {}, "image/jpeg": {}, "image/png": {}}},
                      "307": {"description": "With --output-urls presigned: the image at a presigned URL of the bucket (Location)."},
                      "404": err("No such output."),
                      "503": err("The image store is unreachable for the moment (storage_unavailable); see Retry-After.")}}},
    "/healthz": {"get": {
        "operationId": "health", "summary": "Liveness and the workers' state", "security": [],
        "responses": {"200": {"description": "Alive.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
    "/readyz": {"get": {
        "operationId": "ready", "summary": "Ready for traffic: a worker ready and the database answering", "security": [],
        "responses": {"200": {"description": "Ready.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                      "503": {"description": "Not ready.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}}}},
    "/metrics": {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (text format 0.0.4); see docs/operations.md", "security": [],
        "description": "Served on the API port in the demo profile, or there with --metrics-token (then send it as a Bearer "
                       "token), or on --metrics-address only. In production without either, the API port has no /metrics.",
        "responses": {"200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": err("--metrics-token is set and the request did not send it."),
                      "404": err("Metrics are not served on this port.")}}},
    "/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This document", "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}},
    **openapi_dialects.paths,
  },
  "components": {
    "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                       "description": "An Atelier key (atl_…); `atelier keys create --account NAME` makes one."}},
    "schemas": {
      "CheckInput": check_input, "RunData": run_data, **openapi_dialects.schemas,
      "RunResponse": {"type": "object", "required": ["success", "data"],
                      "properties": {"success": {"const": True}, "data": {"$ref": "#/components/schemas/RunData"}}},
      "Error": error_body,
      "Model": {"type": "object", "required": ["id", "title", "description", "price_per_image", "parameters"], "properties": {
          "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
          "trigger_words": {"type": "array", "items": {"type": "string"}},
          "price_per_image": {"type": "object", "required": ["currency", "minor_units"], "properties": {
              "currency": {"type": "string"}, "minor_units": {"type": "integer"}, "display": {"type": "string"}}},
          "license": {"type": "string"},
          "parameters": {"type": "array", "items": {"type": "object", "required": ["name", "kind"]}}}},
      "Readiness": {"type": "object", "required": ["ready", "workers", "database", "draining"], "properties": {
          "ready": {"type": "boolean"}, "workers": {"type": "boolean"}, "database": {"type": "boolean"},
          "draining": {"type": "boolean", "description": "True after SIGTERM: no new runs are taken."}}},
      "Health": {"type": "object", "required": ["status", "workers"], "properties": {
          "status": {"type": "string", "enum": ["ok", "starting"]},
          "workers": {"type": "array", "items": {"type": "object"}}}},
    },
  },
}
text = json.dumps(doc, indent=1)
assert '"""#' not in text
open('Sources/AtelierHTTP/OpenAPIDocument.swift', 'w').write(
'''// Generated by docs/tools/openapi_source.py and docs/tools/openapi_dialects.py (the routes and their
// responses); edit those and run `python3 docs/tools/openapi_source.py` from the repository root.

/// The routes of the public API's OpenAPI 3.1 document; `OpenAPIBuilder` adds the schemas built from the live
/// catalog and serves it at /openapi.json. Tests check that its routes are exactly the router's and that the run
/// parameters are exactly the catalog's; schemathesis (every check and phase) checks the server against it.
public enum OpenAPIDocument {
    public static let json = #"""
''' + text + '''
"""#
}
''')
