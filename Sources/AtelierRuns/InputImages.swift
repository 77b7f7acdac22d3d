import AtelierCore
import Crypto
import AtelierEngine
import Foundation
import Logging

/// Turns a request's `image` and `mask` into stored, checked inputs: URLs fetched through the `OutboundClient`,
/// every source's bytes recognised and bounded by `ImageInspector`, then written to the input storage, where
/// the worker reads them (on every attempt, so a retry after a crash uses the same bytes) until the run ends.
public struct InputImages: Sendable {
    public let storage: any ImageStorage
    public let client: OutboundClient
    public let limits: ImageLimits
    public let fetchLimits: OutboundLimits
    /// Deletes inputs no run will read, until the store takes them.
    let janitor: StorageJanitor

    public init(storage: any ImageStorage, client: OutboundClient, limits: ImageLimits, fetchLimits: OutboundLimits,
                logger: Logger = Logger(label: "atelier.inputs")) {
        self.storage = storage
        janitor = StorageJanitor(storage: storage, logger: logger)
        self.client = client
        self.limits = limits
        self.fetchLimits = fetchLimits
    }

    /// Reads, checks and stores the inputs; the run then takes the image's size. On any error nothing is left
    /// stored. The caller removes the files (`remove`) if the run is not queued after all.
    public func attach(_ pending: RunRequestDecoder.PendingInputs, to run: inout RunRequest) async throws(AtelierError) {
        guard let imageSource = pending.image else { return }
        // Both are read and checked before either is stored, so a bad mask leaves no stored image behind.
        let image = try await read(imageSource, param: "image")
        let mask: ([UInt8], ImageHeader, InputImage.Origin)? = if let m = pending.mask { try await read(m, param: "mask") } else { nil }
        let storedImage = try await store(image.0, image.1, origin: image.2, param: "image")
        var storedMask: InputImage?
        if let mask {
            do { storedMask = try await store(mask.0, mask.1, origin: mask.2, param: "mask") }
            catch { remove([storedImage]); throw error }
        }
        run.attach(image: storedImage, mask: storedMask)
    }

    func read(_ source: ImageSource, param: String) async throws(AtelierError) -> ([UInt8], ImageHeader, InputImage.Origin) {
        let bytes: [UInt8]
        let origin: InputImage.Origin
        switch source {
        case .bytes(let b, let o):
            bytes = b
            origin = o
        case .url(let url):
            var limits = fetchLimits
            limits.maxBytes = self.limits.maxBytes
            let response: OutboundResponse
            do {
                response = try await client.send(.GET, url: url, headers: ["User-Agent": "Atelier/1 (image fetch)", "Accept": "image/png, image/jpeg, image/webp"], limits: limits)
            } catch {
                let code = switch error {
                case .refused: "unsafe_url"
                case .tooLarge: "image_too_large"
                case .invalidURL: "invalid_url"
                default: "fetch_failed"
                }
                throw .invalid(param, code, "\(param): the URL was not fetched: \(error.message)")
            }
            guard response.status == 200 else {
                throw .invalid(param, "fetch_failed", "\(param): the URL answered HTTP \(response.status), not 200 with an image")
            }
            bytes = response.body
            origin = .url
        }
        return (bytes, try ImageInspector.inspect(bytes, param: param, limits: limits), origin)
    }

    func store(_ bytes: [UInt8], _ header: ImageHeader, origin: InputImage.Origin, param: String) async throws(AtelierError) -> InputImage {
        let name = storage.newName(format: header.format)
        do {
            try await storage.put(name: name, bytes: bytes)
        } catch is StorageUnavailable {
            // The upload may still land (a bucket that did not answer in time can carry it out later): no run will
            // read it, so it is deleted once the store answers again.
            janitor.deleteLater([name], landing: true)
            throw .storageUnavailable
        } catch {
            throw .internalError("the \(param) input could not be stored: \(error)")
        }
        let digest = SHA256.hash(data: bytes).hex
        return InputImage(file: name, format: header.format, width: header.width, height: header.height,
                          bytes: bytes.count, sha256: digest, origin: origin)
    }

    /// Deletes stored inputs of a run that was not queued, in the background: the answer does not wait for the
    /// store, and a store that is down gets the deletes once it answers again.
    public func remove(_ inputs: [InputImage]) {
        janitor.deleteLater(inputs.map(\.file))
    }
}
