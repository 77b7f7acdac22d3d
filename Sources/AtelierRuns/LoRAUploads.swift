import AtelierCore
import Crypto
import Foundation

/// LoRA files uploaded with a run (multipart `lora_weights` or `extra_lora`): checked as safetensors at submit,
/// since the bytes are here (a bad one is refused with 422 `lora_invalid`, nothing queued or charged), then stored
/// in the cluster's LoRA store under their content hash, which the run then names.
struct LoRAUploads: Sendable {
    let store: any LoRAStore
    let limits: LoRALimits

    func attach(_ uploads: [RunRequestDecoder.LoRAUpload], to run: inout RunRequest) async throws {
        guard var loras = run.loras else { return }
        for upload in uploads {
            let param = loras[upload.index].parameter
            guard upload.bytes.count <= limits.maxBytes else {
                throw AtelierError.invalid(param, "lora_invalid", LoRAFileProblem.tooLarge(limit: limits.maxBytes).failure(parameter: param).message)
            }
            do {
                _ = try SafetensorsHeader.parse(upload.bytes, fileSize: upload.bytes.count)
            } catch {
                throw AtelierError.invalid(param, "lora_invalid", error.failure(parameter: param).message)
            }
            let sha = SHA256.hash(data: upload.bytes).hex
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("atelier-lora-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            guard FileManager.default.createFile(atPath: scratch, contents: Data(upload.bytes)) else {
                throw AtelierError.internalError("the uploaded LoRA could not be staged at \(scratch)")
            }
            do {
                try await store.store(sha256: sha, from: scratch)
            } catch is StorageUnavailable {
                throw AtelierError.storageUnavailable
            }
            loras[upload.index].sha256 = sha
        }
        run.loras = loras
    }
}
