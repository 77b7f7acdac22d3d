/// The public API's OpenAPI 3.1 document, written by hand (DESIGN.md: clients send every value as a string, so
/// decoding is ours) and served at /openapi.json. Tests check that its routes are exactly the router's and that
/// the run parameters are exactly the catalog's; schemathesis checks the server against it.
public enum OpenAPIDocument {
    public static let json = #"""
{
 "openapi": "3.1.0",
 "info": {
  "title": "Atelier",
  "version": "1.0.0",
  "description": "Self-hosted image generation with the hosted service's /api/v4/run contract. See docs/api.md."
 },
 "servers": [
  {
   "url": "/"
  }
 ],
 "security": [
  {
   "bearerAuth": []
  }
 ],
 "paths": {
  "/api/v4/run": {
   "post": {
    "operationId": "run",
    "summary": "Run a model",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/RunInput"
       }
      },
      "application/x-www-form-urlencoded": {
       "schema": {
        "$ref": "#/components/schemas/RunInput"
       }
      },
      "multipart/form-data": {
       "schema": {
        "$ref": "#/components/schemas/RunInput"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The run: finished (output set), failed is reported as an error, or still queued/running when the wait window ended.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RunResponse"
        }
       }
      },
      "links": {
       "CheckRun": {
        "operationId": "checkGet",
        "parameters": {
         "request_id": "$response.body#/data/request_id"
        },
        "description": "The run's status and outcome, later."
       }
      }
     },
     "400": {
      "description": "A parameter or the body is invalid; nothing was queued.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "description": "Missing, unknown or revoked API key.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "413": {
      "description": "The body is larger than the limit.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "A Content-Type other than JSON, form or multipart.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Every image was flagged by the safety checker.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "500": {
      "description": "The generation failed.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "503": {
      "description": "The run was lost to a worker crash, a timeout or a restart; nothing was made.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/api/v4/check": {
   "get": {
    "operationId": "checkGet",
    "summary": "A run's status and outcome",
    "parameters": [
     {
      "name": "request_id",
      "in": "query",
      "required": true,
      "schema": {
       "type": "string",
       "pattern": "^[0-9]{1,18}$"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The run: finished (output set), failed is reported as an error, or still queued/running when the wait window ended.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RunResponse"
        }
       }
      }
     },
     "400": {
      "description": "A parameter or the body is invalid; nothing was queued.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "description": "Missing, unknown or revoked API key.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "No such run for this key's account.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   },
   "post": {
    "operationId": "checkPost",
    "summary": "A run's status and outcome",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/CheckInput"
       }
      },
      "application/x-www-form-urlencoded": {
       "schema": {
        "$ref": "#/components/schemas/CheckInput"
       }
      },
      "multipart/form-data": {
       "schema": {
        "$ref": "#/components/schemas/CheckInput"
       }
      }
     }
    },
    "responses": {
     "200": {
      "description": "The run: finished (output set), failed is reported as an error, or still queued/running when the wait window ended.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RunResponse"
        }
       }
      }
     },
     "400": {
      "description": "A parameter or the body is invalid; nothing was queued.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "description": "Missing, unknown or revoked API key.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "413": {
      "description": "The body is larger than the limit.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "415": {
      "description": "A Content-Type other than JSON, form or multipart.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "404": {
      "description": "No such run for this key's account.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/storage/outputs/{name}": {
   "get": {
    "operationId": "output",
    "summary": "A generated image",
    "security": [],
    "parameters": [
     {
      "name": "name",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The image; names are random and never reused, so it is cached for good.",
      "content": {
       "image/webp": {},
       "image/jpeg": {},
       "image/png": {}
      }
     },
     "404": {
      "description": "No such output.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     }
    }
   }
  },
  "/healthz": {
   "get": {
    "operationId": "health",
    "summary": "Liveness and the workers' state",
    "security": [],
    "responses": {
     "200": {
      "description": "Alive.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Health"
        }
       }
      }
     }
    }
   }
  },
  "/openapi.json": {
   "get": {
    "operationId": "openapi",
    "summary": "This document",
    "security": [],
    "responses": {
     "200": {
      "description": "OpenAPI 3.1",
      "content": {
       "application/json": {}
      }
     }
    }
   }
  }
 },
 "components": {
  "securitySchemes": {
   "bearerAuth": {
    "type": "http",
    "scheme": "bearer",
    "description": "An Atelier key (atl_\u2026); `atelier keys create --account NAME` makes one."
   }
  },
  "schemas": {
   "RunInput": {
    "type": "object",
    "additionalProperties": false,
    "required": [
     "model_id",
     "prompt",
     "aspect_ratio"
    ],
    "properties": {
     "model_id": {
      "type": "string",
      "enum": [
       "flux-cute-3d-kawaii"
      ],
      "description": "The model to run."
     },
     "api_key": {
      "type": "string",
      "description": "The API key, for clients that cannot set the Authorization header."
     },
     "prompt": {
      "type": "string",
      "minLength": 1,
      "maxLength": 3000,
      "pattern": "\\S",
      "description": "What to draw; at most 3000 characters (the T5 encoder reads at most 512 tokens)."
     },
     "aspect_ratio": {
      "type": "string",
      "enum": [
       "1:1",
       "16:9",
       "21:9",
       "3:2",
       "2:3",
       "4:5",
       "5:4",
       "3:4",
       "4:3",
       "9:16",
       "9:21",
       "custom"
      ]
     },
     "width": {
      "description": "With aspect_ratio custom only; rounded up to a multiple of 16.",
      "oneOf": [
       {
        "type": "integer",
        "minimum": 256,
        "maximum": 1440
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.0+)?$"
       }
      ]
     },
     "height": {
      "description": "With aspect_ratio custom only; rounded up to a multiple of 16.",
      "oneOf": [
       {
        "type": "integer",
        "minimum": 256,
        "maximum": 1440
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.0+)?$"
       }
      ]
     },
     "megapixels": {
      "description": "1 or 0.25 (each side halved).",
      "default": "1",
      "oneOf": [
       {
        "type": "string",
        "enum": [
         "1",
         "0.25"
        ]
       },
       {
        "type": "number",
        "enum": [
         1,
         0.25
        ]
       }
      ]
     },
     "num_outputs": {
      "description": "Images in one run; output is then a list.",
      "oneOf": [
       {
        "type": "integer",
        "minimum": 1,
        "maximum": 4
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.0+)?$"
       }
      ],
      "default": 1
     },
     "num_inference_steps": {
      "description": "Denoising steps.",
      "oneOf": [
       {
        "type": "integer",
        "minimum": 1,
        "maximum": 50
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.0+)?$"
       }
      ],
      "default": 28
     },
     "guidance": {
      "description": "Distilled guidance. Alias: guidance_scale.",
      "oneOf": [
       {
        "type": "number",
        "minimum": 0,
        "maximum": 10
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]+)?$"
       }
      ],
      "default": 3
     },
     "guidance_scale": {
      "description": "Alias of guidance; send one of the two.",
      "oneOf": [
       {
        "type": "number",
        "minimum": 0,
        "maximum": 10
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]+)?$"
       }
      ],
      "default": 3
     },
     "seed": {
      "description": "0 to 2^53-1, or \"\" / absent for a random seed; the seed used is returned.",
      "oneOf": [
       {
        "type": "integer",
        "minimum": 0,
        "maximum": 9007199254740991
       },
       {
        "type": "string",
        "pattern": "^([0-9]{1,16})?$"
       }
      ]
     },
     "output_format": {
      "type": "string",
      "enum": [
       "webp",
       "jpg",
       "jpeg",
       "png"
      ],
      "default": "webp"
     },
     "output_quality": {
      "description": "For webp and jpg; ignored for png.",
      "oneOf": [
       {
        "type": "integer",
        "minimum": 0,
        "maximum": 100
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.0+)?$"
       }
      ],
      "default": 80
     },
     "lora_scale": {
      "description": "LoRA strength; 0 gives the base model's image.",
      "oneOf": [
       {
        "type": "number",
        "minimum": -1,
        "maximum": 3
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]+)?$"
       }
      ],
      "default": 1
     },
     "go_fast": {
      "oneOf": [
       {
        "type": "boolean"
       },
       {
        "type": "string",
        "enum": [
         "true",
         "false",
         "True",
         "False",
         "1",
         "0"
        ]
       }
      ],
      "default": true,
      "description": "fp8 + compiled transformer where the GPU supports it."
     },
     "prompt_strength": {
      "description": "Image-to-image strength (with image inputs, a later release).",
      "oneOf": [
       {
        "type": "number",
        "minimum": 0,
        "maximum": 1
       },
       {
        "type": "string",
        "pattern": "^-?[0-9]+(\\.[0-9]+)?$"
       }
      ],
      "default": 0.8
     },
     "disable_safety_checker": {
      "oneOf": [
       {
        "type": "boolean"
       },
       {
        "type": "string",
        "enum": [
         "true",
         "false",
         "True",
         "False",
         "1",
         "0"
        ]
       }
      ],
      "default": false
     }
    }
   },
   "CheckInput": {
    "type": "object",
    "additionalProperties": false,
    "required": [
     "request_id"
    ],
    "properties": {
     "request_id": {
      "oneOf": [
       {
        "type": "integer",
        "minimum": 1
       },
       {
        "type": "string",
        "pattern": "^[0-9]{1,18}$"
       }
      ]
     },
     "api_key": {
      "type": "string"
     }
    }
   },
   "RunData": {
    "type": "object",
    "required": [
     "request_id",
     "status",
     "model_id",
     "seed",
     "width",
     "height",
     "input"
    ],
    "properties": {
     "request_id": {
      "type": "integer"
     },
     "status": {
      "type": "string",
      "enum": [
       "queued",
       "running",
       "succeeded",
       "failed",
       "canceled"
      ]
     },
     "model_id": {
      "type": "string"
     },
     "output": {
      "oneOf": [
       {
        "type": "string",
        "format": "uri"
       },
       {
        "type": "array",
        "items": {
         "type": "string",
         "format": "uri"
        }
       }
      ]
     },
     "output_type": {
      "type": "string",
      "enum": [
       "image"
      ]
     },
     "seed": {
      "type": "integer"
     },
     "seeds": {
      "type": "array",
      "items": {
       "type": "integer"
      }
     },
     "width": {
      "type": "integer"
     },
     "height": {
      "type": "integer"
     },
     "path": {
      "type": "string",
      "enum": [
       "standard",
       "fast"
      ]
     },
     "path_reason": {
      "type": "string"
     },
     "timings": {
      "type": "object",
      "properties": {
       "inference_ms": {
        "type": "number"
       },
       "encode_ms": {
        "type": "number"
       },
       "total_ms": {
        "type": "number"
       }
      }
     },
     "safety_checker": {
      "type": "object",
      "required": [
       "checker",
       "ran",
       "dropped",
       "note"
      ],
      "properties": {
       "checker": {
        "type": [
         "string",
         "null"
        ]
       },
       "ran": {
        "type": "boolean"
       },
       "dropped": {
        "type": "integer"
       },
       "note": {
        "type": "string"
       }
      }
     },
     "error": {
      "type": "object",
      "required": [
       "code",
       "message"
      ],
      "properties": {
       "code": {
        "type": "string"
       },
       "message": {
        "type": "string"
       }
      }
     },
     "progress": {
      "type": "object",
      "required": [
       "step",
       "total"
      ],
      "properties": {
       "step": {
        "type": "integer"
       },
       "total": {
        "type": "integer"
       }
      }
     },
     "input": {
      "type": "object",
      "description": "Every parameter as the run uses it: defaults filled in, the seed picked."
     }
    }
   },
   "RunResponse": {
    "type": "object",
    "required": [
     "success",
     "data"
    ],
    "properties": {
     "success": {
      "const": true
     },
     "data": {
      "$ref": "#/components/schemas/RunData"
     }
    }
   },
   "Error": {
    "type": "object",
    "required": [
     "success",
     "message",
     "error"
    ],
    "properties": {
     "success": {
      "const": false
     },
     "message": {
      "type": "string",
      "description": "What is wrong and how to fix it."
     },
     "error": {
      "type": "object",
      "required": [
       "code"
      ],
      "properties": {
       "code": {
        "type": "string"
       },
       "param": {
        "type": "string"
       },
       "details": {
        "type": "array",
        "items": {
         "type": "object",
         "required": [
          "param",
          "code",
          "message"
         ],
         "properties": {
          "param": {
           "type": "string"
          },
          "code": {
           "type": "string"
          },
          "message": {
           "type": "string"
          }
         }
        }
       }
      }
     },
     "data": {
      "$ref": "#/components/schemas/RunData"
     }
    }
   },
   "Health": {
    "type": "object",
    "required": [
     "status",
     "workers"
    ],
    "properties": {
     "status": {
      "type": "string",
      "enum": [
       "ok",
       "starting"
      ]
     },
     "workers": {
      "type": "array",
      "items": {
       "type": "object"
      }
     }
    }
   }
  }
 }
}
"""#
}
