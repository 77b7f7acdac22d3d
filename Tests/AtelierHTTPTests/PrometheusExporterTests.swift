import AtelierMetrics
import Testing

/// The registry behind /metrics: Atelier's names, run histograms that reach the 300 s job timeout, and
/// Hummingbird's MetricsMiddleware names renamed to Atelier's with Prometheus-style labels.
@Suite struct PrometheusExporterTests {
    @Test func runsAreRecordedUnderAtelierNamesWithBucketsToThreeHundredSeconds() {
        let exporter = PrometheusExporter()
        let metrics = AtelierMetrics(factory: exporter.factory)
        metrics.runEnded(model: "m", status: "succeeded", code: "", seconds: 42, inferenceSeconds: 40, images: 2, charged: 6)
        metrics.runEnded(model: "m", status: "failed", code: "timeout", seconds: 301, inferenceSeconds: nil, images: 0, charged: 0)
        let text = exporter.render()
        #expect(text.contains(#"atelier_runs_ended_total{model="m",status="succeeded",code=""} 1"#))
        #expect(text.contains(#"atelier_runs_ended_total{model="m",status="failed",code="timeout"} 1"#))
        #expect(text.contains(#"atelier_run_duration_seconds_bucket{model="m",status="succeeded",le="45.0"} 1"#))
        #expect(text.contains(#"atelier_run_duration_seconds_bucket{model="m",status="failed",le="300.0"} 0"#))
        #expect(text.contains(#"atelier_images_generated_total{model="m"} 2"#))
        #expect(text.contains(#"atelier_credit_captured_minor_total{model="m"} 6"#))
        #expect(!text.contains("atelier_run_inference_seconds_count{model=\"m\"} 2"))
    }

    @Test func httpRequestsAreCountedByRouteMethodAndStatusWithTheInFlightCount() {
        let exporter = PrometheusExporter()
        let http = HTTPRequestMetrics(factory: exporter.factory)
        for _ in 0..<3 { http.started() }
        http.answered(route: "/api/v4/check", method: "GET", status: 200, seconds: 0.003)
        http.answered(route: "/api/v4/check", method: "GET", status: 200, seconds: 0.2)
        #expect(http.inFlight == 1)
        http.failed(route: "NotFound", method: "GET", status: 500, seconds: 0.001)
        #expect(http.inFlight == 0)
        let text = exporter.render()
        #expect(text.contains(#"atelier_http_requests_total{route="/api/v4/check",method="GET",status="200"} 2"#))
        #expect(text.contains(#"atelier_http_request_duration_seconds_bucket{route="/api/v4/check",method="GET",status="200",le="0.005"} 1"#))
        #expect(text.contains(#"atelier_http_request_duration_seconds_bucket{route="/api/v4/check",method="GET",status="200",le="0.25"} 2"#))
        #expect(text.contains(#"atelier_http_request_errors_total{route="NotFound",method="GET",status="500"} 1"#))
    }

    @Test func aGoneDevicesGaugesLeaveTheOthers() {
        let exporter = PrometheusExporter()
        let metrics = AtelierMetrics(factory: exporter.factory)
        let devices = (0..<2).map { AtelierMetrics.GPUDevice(device: "cuda:\($0)", name: "G", memoryUsedBytes: 5, memoryTotalBytes: 9, utilization: 0.25) }
        metrics.workerReported(slot: 0, devices: devices, loraSwitches: 0, promptCacheHits: 0, promptCacheMisses: 0)
        metrics.gpuDevicesGone([devices[0]])
        let text = exporter.render()
        #expect(!text.contains(#"device="cuda:0""#))
        #expect(text.contains(#"atelier_gpu_memory_used_bytes{device="cuda:1",name="G"} 5.0"#))
        #expect(text.contains(#"atelier_gpu_utilization_ratio{device="cuda:1",name="G"} 0.25"#))
    }

    /// Were Hummingbird's MetricsMiddleware (or a library through the global system) to record, its names land on Atelier's.
    @Test func hummingbirdsHTTPMetricNamesAreMappedToAtelierNames() {
        let exporter = PrometheusExporter()
        exporter.factory.makeCounter(label: "hb.requests", dimensions: [
            ("http.route", "/api/v4/check"), ("http.request.method", "GET"), ("http.response.status_code", "200"),
        ]).increment(by: 3)
        let text = exporter.render()
        #expect(text.contains(#"atelier_http_requests_total{route="/api/v4/check",method="GET",status="200"} 3"#))
        #expect(!text.contains("hb_requests") && !text.contains("hb.requests"))
    }
}
