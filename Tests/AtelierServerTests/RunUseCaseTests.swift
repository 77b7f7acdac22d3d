import AtelierCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// `/api/v4/run`, `/check` and `/cancel` through the real application: the key checked by the middleware (header
/// or body field), the run validated, held, queued, run by a worker, recorded and charged, and read back.
@Suite(.timeLimit(.minutes(1))) struct RunUseCaseTests {
    @Test func aRunIsMadeChargedAndReadBack() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            let id = try await client.execute(
                uri: "/api/v4/run", method: .post, headers: t.bearer,
                body: try body(["model_id": "flux-cute-3d-kawaii", "prompt": "a cat", "aspect_ratio": "1:1", "num_outputs": 2])
            ) { response -> Int64 in
                #expect(response.status == .ok)
                let data = try #require(try json(response.body)["data"] as? [String: Any])
                #expect(data["status"] as? String == "succeeded")
                #expect((data["output"] as? [String])?.count == 2)
                let cost = data["cost"] as? [String: Any]
                #expect(cost?["amount_charged"] as? Int == 6)
                #expect(cost?["available_balance"] as? Int == 994)
                return try #require((data["request_id"] as? NSNumber)?.int64Value)
            }
            // The key in the body instead of the header (the hosted API's clients send either).
            try await client.execute(uri: "/api/v4/check", method: .post, headers: [.contentType: "application/json"],
                                     body: try body(["request_id": id, "api_key": t.key.plaintext])) { response in
                #expect(response.status == .ok)
                let data = try json(response.body)["data"] as? [String: Any]
                #expect(data?["status"] as? String == "succeeded")
                #expect((data?["cost"] as? [String: Any])?["images_charged"] as? Int == 2)
            }
            try await client.execute(uri: "/api/v4/check?request_id=\(id)", method: .get, headers: t.bearer) { response in
                #expect(response.status == .ok)
            }
            // A finished run cannot be canceled, and nothing changes.
            try await client.execute(uri: "/api/v4/cancel", method: .post, headers: t.bearer, body: try body(["request_id": id])) { response in
                #expect(response.status == .conflict)
                let error = try json(response.body)["error"] as? [String: Any]
                #expect(error?["code"] as? String == "already_finished")
            }
        }
        #expect(try await t.available() == 994)
    }

    @Test func aBadKeyInTheBodyIsRefusedBeforeAnythingIsRead() async throws {
        let t = try await TestNode.make()
        try await t.test { client in
            try await client.execute(uri: "/api/v4/run", method: .post, headers: [.contentType: "application/json"],
                                     body: try body(["model_id": "flux-cute-3d-kawaii", "prompt": "a cat", "api_key": 42])) { response in
                #expect(response.status == .badRequest)
                let error = try json(response.body)["error"] as? [String: Any]
                #expect(error?["param"] as? String == "api_key")
            }
            try await client.execute(uri: "/api/v4/run", method: .post, headers: [.contentType: "application/json"],
                                     body: try body(["model_id": "flux-cute-3d-kawaii", "prompt": "a cat", "api_key": "atl_nope"])) { response in
                #expect(response.status == .unauthorized)
            }
            // A public route needs no key.
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
        #expect(try await t.available() == 1_000)
        #expect(try await t.node.store.jobs(accountID: t.accountID).isEmpty)
    }

    @Test func aRunOfAnotherAccountIsNotFound() async throws {
        let t = try await TestNode.make()
        let other = APIKey.generate()
        try await t.node.store.addKey(other, accountID: try await t.node.store.ensureAccount(named: "other"))
        try await t.test { client in
            let id = try await client.execute(uri: "/api/v4/run", method: .post, headers: t.bearer,
                                              body: try body(["model_id": "flux-cute-3d-kawaii", "prompt": "a cat", "aspect_ratio": "1:1"])) {
                let data = try json($0.body)["data"] as? [String: Any]
                return try #require(data?["request_id"] as? NSNumber).int64Value
            }
            for (uri, method) in [("/api/v4/check?request_id=\(id)", HTTPRequest.Method.get), ("/api/v4/cancel", .post)] {
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer \(other.plaintext)", .contentType: "application/json"],
                                         body: try body(["request_id": id])) { response in
                    #expect(response.status == .notFound)
                }
            }
        }
    }
}

/// Cancel through the real application, on a worker slow enough (0.2 s a step) that the run is still queued or
/// running when the cancel lands: it never finishes, and nothing is charged.
@Suite(.timeLimit(.minutes(1))) struct CancelHandlerTests {
    @Test func aCanceledRunIsNotCharged() async throws {
        let t = try await TestNode.make(workerMode: "slow")
        try await t.test { client in
            let id = try await client.execute(
                uri: "/api/v4/run", method: .post, headers: t.bearer,
                body: try body(["model_id": "flux-cute-3d-kawaii", "prompt": "a cat", "aspect_ratio": "1:1", "wait": 0, "num_inference_steps": 28])
            ) { response -> Int64 in
                let data = try #require(try json(response.body)["data"] as? [String: Any])
                #expect(["queued", "running"].contains(data["status"] as? String))
                #expect((data["cost"] as? [String: Any])?["amount_held"] as? Int == 3)
                return try #require((data["request_id"] as? NSNumber)?.int64Value)
            }
            for _ in 0..<2 {
                // Canceling a canceled run again answers the same.
                try await client.execute(uri: "/api/v4/cancel", method: .post, headers: t.bearer, body: try body(["request_id": id])) { response in
                    #expect(response.status == .ok)
                    let data = try json(response.body)["data"] as? [String: Any]
                    #expect(data?["status"] as? String == "canceled")
                    #expect((data?["cost"] as? [String: Any])?["amount_charged"] as? Int == 0)
                }
            }
        }
        let runs = try await t.node.store.jobs(accountID: t.accountID)
        #expect(runs.map(\.status) == [.canceled])
        let balance = try await t.node.store.balance(accountID: t.accountID)
        #expect(balance.available == 1_000 && balance.held == 0)
    }
}
