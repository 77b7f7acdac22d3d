import AtelierCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Replicate's and OpenAI's APIs through the real application: each translates onto the one run service, so a
/// prediction or an image is charged like a /api/v4 run, and each answers a refused key in its own error shape.
@Suite(.timeLimit(.minutes(1))) struct DialectHandlerTests {
    @Test func aReplicatePredictionRunsAndIsCharged() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            // Replicate's older clients send `Token`; sync mode (Prefer: wait) carries the image itself.
            let headers: HTTPFields = [.authorization: "Token \(t.key.plaintext)", .contentType: "application/json",
                                       HTTPField.Name("Prefer")!: "wait=30"]
            let id = try await client.execute(uri: "/v1/models/atelier/flux-cute-3d-kawaii/predictions", method: .post, headers: headers,
                                              body: try body(["input": ["prompt": "a cat"]])) { response -> String in
                #expect(response.status == .created)
                let prediction = try json(response.body)
                #expect(prediction["status"] as? String == "succeeded")
                #expect((prediction["output"] as? [String])?.first?.hasPrefix("data:image/webp;base64,") == true)
                #expect(response.headers[.location]?.hasSuffix("/v1/predictions/\(prediction["id"] as? String ?? "")") == true)
                return try #require(prediction["id"] as? String)
            }
            try await client.execute(uri: "/v1/predictions/\(id)", method: .get, headers: t.bearer) { response in
                let prediction = try json(response.body)
                #expect(prediction["status"] as? String == "succeeded")
                #expect((prediction["output"] as? [String])?.first?.contains("/storage/outputs/") == true)
            }
            try await client.execute(uri: "/v1/predictions", method: .get, headers: t.bearer) { response in
                let results = try json(response.body)["results"] as? [[String: Any]]
                #expect(results?.map { $0["id"] as? String } == [id])
            }
        }
        // 1:1 by default, one image at 3 cents.
        #expect(try await t.available() == 997)
    }

    @Test func replicateRefusesABadKeyAsAProblem() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            try await client.execute(uri: "/v1/predictions", method: .post, headers: [.authorization: "Token atl_nope", .contentType: "application/json"],
                                     body: try body(["version": "x", "input": ["prompt": "a cat"]])) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = try json(response.body)
                #expect(problem["status"] as? Int == 401 && problem["code"] as? String == "unauthorized")
            }
        }
    }

    @Test func anOpenAIImageIsMadeAndCharged() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            try await client.execute(uri: "/v1/images/generations", method: .post, headers: t.bearer,
                                     body: try body(["model": "flux-cute-3d-kawaii", "prompt": "a cat", "n": 2, "size": "1024x1024"])) { response in
                #expect(response.status == .ok)
                let answer = try json(response.body)
                let data = try #require(answer["data"] as? [[String: Any]])
                #expect(data.count == 2 && data.allSatisfy { ($0["url"] as? String)?.contains("/storage/outputs/") == true })
                #expect((answer["cost"] as? [String: Any])?["amount_charged"] as? Int == 6)
            }
        }
        #expect(try await t.available() == 994)
    }

    @Test func openAIRefusesABadKeyInItsOwnShape() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            // openai-python sends Bearer only; Token is Replicate's.
            try await client.execute(uri: "/v1/images/generations", method: .post,
                                     headers: [.authorization: "Token \(t.key.plaintext)", .contentType: "application/json"],
                                     body: try body(["model": "flux-cute-3d-kawaii", "prompt": "a cat"])) { response in
                #expect(response.status == .unauthorized)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "unauthorized")
                #expect(error.keys.contains("param") && error["type"] != nil)
            }
        }
        #expect(try await t.node.store.jobs(accountID: t.accountID).isEmpty)
    }
}

/// A JSON number no double holds (1e400) is a parameter out of its range, named with the range, in every dialect;
/// a huge `wait` is refused, not a crash. Nothing is queued or charged.
@Suite(.timeLimit(.minutes(1))) struct HugeNumberTests {
    @Test func numbersBeyondAnyDoubleAreOutOfRangeInEveryDialect() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            let run = #"{"model_id":"flux-cute-3d-kawaii","prompt":"a cat","aspect_ratio":"1:1","guidance":1e400,"seed":1e309}"#
            try await client.execute(uri: "/api/v4/run", method: .post, headers: t.bearer, body: ByteBuffer(string: run)) { response in
                #expect(response.status == .badRequest)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "out_of_range" && error["param"] as? String == "guidance")
                let details = error["details"] as? [[String: Any]] ?? []
                #expect((details.first?["message"] as? String)?.contains("guidance must be from") == true)
                #expect(details.contains { $0["param"] as? String == "seed" })
            }
            let wait = #"{"model_id":"flux-cute-3d-kawaii","prompt":"a cat","aspect_ratio":"1:1","wait":1e19}"#
            try await client.execute(uri: "/api/v4/run", method: .post, headers: t.bearer, body: ByteBuffer(string: wait)) { response in
                #expect(response.status == .badRequest)
                let error = try json(response.body)["error"] as? [String: Any]
                #expect(error?["param"] as? String == "wait")
            }
            let prediction = #"{"input":{"prompt":"a cat","guidance":-1e400}}"#
            try await client.execute(uri: "/v1/models/atelier/flux-cute-3d-kawaii/predictions", method: .post, headers: t.bearer,
                                     body: ByteBuffer(string: prediction)) { response in
                #expect(response.status == .badRequest)
                let problem = try json(response.body)
                #expect(problem["code"] as? String == "out_of_range")
                #expect((problem["invalid_params"] as? [[String: Any]])?.first?["param"] as? String == "guidance")
            }
            try await client.execute(uri: "/v1/images/generations", method: .post, headers: t.bearer,
                                     body: ByteBuffer(string: #"{"model":"flux-cute-3d-kawaii","prompt":"a cat","n":1e400}"#)) { response in
                #expect(response.status == .badRequest)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["param"] as? String == "n" && error["code"] as? String == "out_of_range")
            }
        }
        #expect(try await t.node.store.jobs(accountID: t.accountID).isEmpty)
        #expect(try await t.available() == 1_000)
    }
}
