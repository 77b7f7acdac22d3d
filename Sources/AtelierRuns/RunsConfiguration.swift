import AtelierCore

/// The run use case's limits, whichever API a run comes through.
public struct RunsConfiguration: Sendable {
    /// The longest a request may ask to wait for its run (`wait`, `Prefer: wait=N`); longer asks are cut to it.
    public var maxWait: Duration = .seconds(600)
    /// Runs an account may have queued or running at once; more are refused with 429.
    public var maxConcurrentRuns: Int = 16
    /// Which hosts client URLs (webhooks, input images) may reach: no internal addresses unless allow-listed.
    public var outboundPolicy = OutboundAddressPolicy()
    /// How many LoRAs a run may stack, and how large a LoRA file may be.
    public var loraLimits = LoRALimits()
    public init() {}
}
