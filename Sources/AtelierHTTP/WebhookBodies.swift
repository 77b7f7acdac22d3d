import AtelierCore
import AtelierRuns
import Foundation

/// A webhook's body in the shape of the API its run came through: the /api/v4/check object, or (a run made
/// through Replicate's API) the prediction.
public struct WebhookBodies: WebhookPayloads {
    /// Output URLs as the API's answers build them (a CDN's, with `--output-urls public`).
    let links: OutputLinks
    /// The models, for the cost's currency and a Replicate prediction's version.
    let catalog: ModelCatalog
    /// The owner in a Replicate prediction's `model` (`owner/model_id`).
    let replicateOwner: String

    public init(links: OutputLinks, catalog: ModelCatalog, replicateOwner: String) {
        self.links = links
        self.catalog = catalog
        self.replicateOwner = replicateOwner
    }

    public func body(of job: Job, baseURL: String) -> String {
        let currency = catalog[job.request.modelID]?.pricePerImage.currency ?? "USD"
        let encoded: Data? = switch job.webhook?.format ?? .atelier {
        case .atelier:
            try? JSONResponse.encoder.encode(SuccessEnvelope(data: RunView(job: job, baseURL: baseURL, links: links, currency: currency)))
        case .replicate:
            try? JSONResponse.encoder.encode(ReplicatePrediction(job: job, owner: replicateOwner, catalog: catalog, baseURL: baseURL,
                                                                 links: links, progress: nil))
        }
        return String(decoding: encoded ?? Data("{}".utf8), as: UTF8.self)
    }
}
