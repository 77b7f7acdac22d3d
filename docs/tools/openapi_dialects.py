"""The dialects' routes for the OpenAPI document: Replicate's predictions API and OpenAI's Images API (imported by
openapi_source.py). Schemas named here but not defined (ReplicateInput, ModelOwner, ModelName, ModelVersion,
OpenAIImageGeneration, OpenAIImageEdit) are built by the server from the live catalog (OpenAPIBuilder.swift)."""

ID = {"type": "string", "pattern": "^[0-9]{1,18}$"}
NULLABLE_STRING = {"type": ["string", "null"]}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def problem(desc):
    return {"description": desc, "content": {"application/problem+json": {"schema": ref("Problem")}}}


def openai_error(desc):
    return {"description": desc, "content": {"application/json": {"schema": ref("OpenAIError")}}}


def ok(desc, schema, status="200"):
    return {status: {"description": desc, "content": {"application/json": {"schema": schema}}}}


def errors(shape, *codes):
    text = {"400": "A parameter or the body is invalid; nothing was queued.",
            "401": "Missing, unknown or revoked API key.",
            "402": "The account's available credit does not cover price × images; nothing was queued.",
            "404": "No such model, prediction or file for this key's account.",
            "409": "The prediction already finished (cancel), or it was canceled.",
            "413": "The body is larger than the limit.",
            "415": "A Content-Type this route does not take.",
            "422": "A well-formed value whose content cannot be used (an image that does not decode, an internal webhook host), or an Idempotency-Key first used with another request; or every image was flagged.",
            "429": "Too many requests for this key, or too many runs in progress; see Retry-After.",
            "500": "The generation failed.",
            "503": "The database or image store is unreachable, the server is shutting down, or the run was lost to worker crashes; see Retry-After.",
            "504": "The run is still going when the answer could wait no longer (still_running): it goes on and is charged when it ends; x-should-retry: false."}
    return {c: shape(text[c]) for c in codes}


IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "description": "Same key and same request: the first run's answer, never a second run or charge (kept 48 h, per API key).",
               "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}
OWNER_NAME = [{"name": "owner", "in": "path", "required": True, "schema": ref("ModelOwner")},
              {"name": "name", "in": "path", "required": True, "schema": ref("ModelName")}]
URL = "^ *(?:[hH][tT][tT][pP][sS]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][!-~]*)?)? *$"


def create_body(with_version):
    props = {
        "input": ref("ReplicateInput"),
        "webhook": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2048, "pattern": URL}],
                    "description": "http(s) URL POSTed the prediction as it starts and ends, signed per Standard Webhooks."},
        "webhook_completed": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2048, "pattern": URL}],
                              "description": "A URL for the completed event only (used when webhook is absent)."},
        "webhook_events_filter": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "string", "enum": ["start", "output", "logs", "completed"]}}],
                                  "description": "Which events to send (with a webhook; without one it has nothing to filter); output and logs exist only when a run ends here, so they come with completed."},
        "stream": {"type": ["boolean", "null"], "description": "Accepted; every prediction has urls.stream."},
    }
    required = ["input"]
    if with_version:
        props["version"] = ref("ModelVersion")
        required.append("version")
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": required, "properties": props}}}}


PREFER = ("`Prefer: wait` (60 s) or `Prefer: wait=N` (1-60) holds the answer until the prediction ends; a prediction "
          "still going then answers status starting, which the official clients keep polling.")
create_responses = {**ok("The prediction (201, Location: its URL).", ref("Prediction"), "201"),
                    **errors(problem, "400", "401", "402", "404", "413", "415", "422", "429", "503")}
create_responses["201"]["headers"] = {"Location": {"schema": {"type": "string"}, "description": "The prediction's URL."}}

paths = {
    "/v1/models/{owner}/{name}/predictions": {"post": {
        "operationId": "replicateCreateModelPrediction", "tags": ["Replicate"], "summary": "Create a prediction of a model (Replicate)",
        "description": PREFER, "parameters": OWNER_NAME + [IDEMPOTENCY],
        "requestBody": create_body(False), "responses": create_responses}},
    "/v1/predictions": {
        "post": {"operationId": "replicateCreatePrediction", "tags": ["Replicate"], "summary": "Create a prediction of a model version (Replicate)",
                 "description": PREFER, "parameters": [IDEMPOTENCY], "requestBody": create_body(True), "responses": create_responses},
        "get": {"operationId": "replicateListPredictions", "tags": ["Replicate"], "summary": "The account's predictions, newest first, 100 a page",
                "parameters": [{"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^\\+?0*[1-9][0-9]{0,17}$"}}],
                "responses": {**ok("One page; next is the following page's URL.", ref("PredictionPage")),
                              **errors(problem, "400", "401", "429", "503")}}},
    "/v1/predictions/{id}": {"get": {
        "operationId": "replicateGetPrediction", "tags": ["Replicate"], "summary": "A prediction (Replicate)",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": ID}],
        "responses": {**ok("The prediction.", ref("Prediction")), **errors(problem, "401", "404", "429", "503")}}},
    "/v1/predictions/{id}/cancel": {"post": {
        "operationId": "replicateCancelPrediction", "tags": ["Replicate"], "summary": "Cancel a prediction: nothing is charged",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": ID}],
        "responses": {**ok("The canceled prediction.", ref("Prediction")), **errors(problem, "401", "404", "409", "429", "503")}}},
    "/v1/predictions/{id}/stream": {"get": {
        "operationId": "replicateStream", "tags": ["Replicate"], "summary": "A prediction as Server-Sent Events: logs, output, error, done",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": ID}],
        "responses": {"200": {"description": "text/event-stream with the event names Replicate's clients accept.",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      **errors(problem, "401", "404", "429", "503")}}},
    "/v1/models/{owner}/{name}": {"get": {
        "operationId": "replicateGetModel", "tags": ["Replicate"], "summary": "A catalog model as Replicate's clients read it",
        "parameters": OWNER_NAME, "responses": {**ok("The model and its one version.", ref("ReplicateModel")), **errors(problem, "401", "404", "429")}}},
    "/v1/models/{owner}/{name}/versions": {"get": {
        "operationId": "replicateListVersions", "tags": ["Replicate"], "summary": "The model's versions (one: its catalog entry)",
        "parameters": OWNER_NAME, "responses": {**ok("One page.", ref("VersionPage")), **errors(problem, "401", "404", "429")}}},
    "/v1/models/{owner}/{name}/versions/{version}": {"get": {
        "operationId": "replicateGetVersion", "tags": ["Replicate"], "summary": "A version: its inputs' schema",
        "parameters": OWNER_NAME + [{"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**ok("The version.", ref("Version")), **errors(problem, "401", "404", "429")}}},
    "/v1/files": {"post": {
        "operationId": "replicateCreateFile", "tags": ["Replicate"], "summary": "Upload an input image; pass its urls.get as an input",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["content"],
            "properties": {"content": {"type": "string", "format": "binary"},
                           "metadata": {"type": "string",
                                        "pattern": "^[ \\t\\n]*\\{[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*\\}[ \\t\\n]*$",
                                        "description": "A JSON object, as the official client sends it (422 if it does not parse)."}}}}}},
        "responses": {**ok("The file.", ref("File"), "201"), **errors(problem, "400", "401", "413", "415", "422", "429", "503")}}},
    "/v1/files/{id}": {
        "get": {"operationId": "replicateGetFile", "tags": ["Replicate"], "summary": "An uploaded file",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {**ok("The file.", ref("File")), **errors(problem, "401", "404", "429", "503")}},
        "delete": {"operationId": "replicateDeleteFile", "tags": ["Replicate"], "summary": "Delete an uploaded file",
                   "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                   "responses": {"204": {"description": "Deleted."}, **errors(problem, "401", "404", "429", "503")}}},
    "/v1/webhooks/default/secret": {"get": {
        "operationId": "replicateWebhookSecret", "tags": ["Replicate"], "summary": "The account's webhook signing secret (whsec_…)",
        "responses": {**ok("The secret.", {"type": "object", "required": ["key"], "properties": {"key": {"type": "string", "pattern": "^whsec_"}}}),
                      **errors(problem, "401", "429", "503")}}},
    "/v1/images/generations": {"post": {
        "operationId": "openaiGenerate", "tags": ["OpenAI"], "summary": "Generate images (OpenAI Images API)",
        "parameters": [IDEMPOTENCY],
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("OpenAIImageGeneration")}}},
        "responses": {**ok("The images, once made.", ref("ImagesResponse")),
                      **errors(openai_error, "400", "401", "402", "404", "409", "413", "415", "422", "429", "500", "503", "504")}}},
    "/v1/images/edits": {"post": {
        "operationId": "openaiEdit", "tags": ["OpenAI"], "summary": "Edit an image: image-to-image, or inpainting with a mask (transparent = repaint)",
        "parameters": [IDEMPOTENCY],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": ref("OpenAIImageEdit")}}},
        "responses": {**ok("The images, once made.", ref("ImagesResponse")),
                      **errors(openai_error, "400", "401", "402", "404", "409", "413", "415", "422", "429", "500", "503", "504")}}},
    "/v1/models": {"get": {
        "operationId": "openaiModels", "tags": ["OpenAI", "Replicate"],
        "summary": "The catalog as OpenAI lists models (data) and as Replicate does (results)",
        "responses": {**ok("Every model.", ref("OpenAIModelList")), **errors(openai_error, "401", "429")}}},
}

cost = {"type": "object", "required": ["currency", "price_per_image", "images_charged", "amount_charged", "amount_held", "display"],
        "description": "What the run costs, in minor units (cents) of currency; available_balance where the caller owns the account.",
        "properties": {"currency": {"type": "string"}, "price_per_image": {"type": "integer"}, "images_charged": {"type": "integer"},
                       "amount_charged": {"type": "integer"}, "amount_held": {"type": "integer"},
                       "available_balance": {"type": "integer"}, "display": {"type": "object"}}}
version = {"type": "object", "required": ["id", "created_at", "cog_version", "openapi_schema"],
           "properties": {"id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
                          "cog_version": {"type": "string"}, "openapi_schema": {"type": "object"}}}
schemas = {
    "Cost": cost,
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"], "description": "RFC 7807",
                "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                               "detail": {"type": "string"}, "code": {"type": "string"}, "invalid_params": {"type": "array"}}},
    "Prediction": {"type": "object",
                   "required": ["id", "model", "version", "input", "output", "logs", "error", "status", "source", "data_removed", "created_at", "urls", "metrics", "cost"],
                   "properties": {
                       "id": {"type": "string"}, "model": {"type": "string"}, "version": {"type": "string"},
                       "input": {"type": "object"}, "logs": {"type": "string"}, "error": NULLABLE_STRING,
                       "output": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]},
                       "status": {"type": "string", "enum": ["starting", "processing", "succeeded", "failed", "canceled"]},
                       "source": {"type": "string"}, "data_removed": {"type": "boolean"},
                       "created_at": {"type": "string", "format": "date-time"},
                       "started_at": {"type": "string", "format": "date-time"},
                       "completed_at": {"type": "string", "format": "date-time"},
                       "urls": {"type": "object", "required": ["get", "cancel", "stream"]},
                       "metrics": {"type": "object", "required": ["image_count", "price", "amount_charged", "currency"],
                                   "properties": {"predict_time": {"type": "number"}, "total_time": {"type": "number"},
                                                  "image_count": {"type": "integer"}, "price": {"type": "integer"},
                                                  "amount_charged": {"type": "integer"}, "currency": {"type": "string"}}},
                       "cost": ref("Cost")}},
    "PredictionPage": {"type": "object", "required": ["results"],
                       "properties": {"previous": NULLABLE_STRING, "next": NULLABLE_STRING,
                                      "results": {"type": "array", "items": ref("Prediction")}}},
    "Version": version,
    "VersionPage": {"type": "object", "required": ["results"],
                    "properties": {"previous": NULLABLE_STRING, "next": NULLABLE_STRING, "results": {"type": "array", "items": ref("Version")}}},
    "ReplicateModel": {"type": "object", "required": ["url", "owner", "name", "description", "visibility", "latest_version", "price_per_image"],
                       "properties": {"url": {"type": "string"}, "owner": {"type": "string"}, "name": {"type": "string"},
                                      "description": {"type": "string"}, "visibility": {"type": "string"},
                                      "latest_version": ref("Version"), "price_per_image": {"type": "object"}}},
    "File": {"type": "object", "required": ["id", "name", "content_type", "size", "etag", "checksums", "created_at", "urls"],
             "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "content_type": {"type": "string"},
                            "size": {"type": "integer"}, "etag": {"type": "string"}, "checksums": {"type": "object"},
                            "metadata": {"type": "object"}, "created_at": {"type": "string", "format": "date-time"},
                            "expires_at": NULLABLE_STRING, "urls": {"type": "object", "required": ["get"]}}},
    "ImagesResponse": {"type": "object", "required": ["created", "data", "usage", "output_format", "size", "cost", "request_id"],
                       "properties": {"created": {"type": "integer"},
                                      "data": {"type": "array", "items": {"type": "object", "required": ["revised_prompt"], "properties": {
                                          "url": {"type": "string"}, "b64_json": {"type": "string"}, "revised_prompt": {"type": "string"}}}},
                                      "usage": {"type": "object"}, "output_format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
                                      "size": {"type": "string"}, "cost": ref("Cost"), "request_id": {"type": "string"}}},
    "OpenAIError": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "param": NULLABLE_STRING,
                       "code": {"type": "string"}, "details": {"type": "array"}}}}},
    "OpenAIModelList": {"type": "object", "required": ["object", "data", "results"], "properties": {
        "object": {"const": "list"}, "results": {"type": "array", "items": ref("ReplicateModel")},
        "data": {"type": "array", "items": {"type": "object", "required": ["id", "object", "created", "owned_by"], "properties": {
            "id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"}, "owned_by": {"type": "string"},
            "price_per_image": {"type": "integer"}, "currency": {"type": "string"}}}}}},
}
