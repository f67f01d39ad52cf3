import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { StoredVerdict } from "../core/schemas.ts";
import { METRICS } from "../deployment/observability.ts";

/**
 * CloudWatch custom metrics of a shard's verdicts, in embedded metric format (Powertools Metrics): counts,
 * model latency and tokens under the `service` dimension (what the dashboard and the error-rate alarm read),
 * plus per-model copies of Verdicts and ModelErrors. Published once per invocation by {@link flush}.
 */
export class VerdictMetrics {
  private readonly perModel = new Map<string, { verdicts: number; errors: number }>();

  constructor(private readonly metrics: Metrics) {}

  record(verdict: StoredVerdict): void {
    const m = this.metrics;
    m.addMetric(METRICS.verdicts, MetricUnit.Count, 1);
    m.addMetric(METRICS.modelErrors, MetricUnit.Count, verdict.status === "error" ? 1 : 0);
    if (verdict.status === "answered")
      m.addMetric(METRICS.modelLatency, MetricUnit.Milliseconds, verdict.latencyMs);
    // Null: the endpoint reported no valid count (the report counts those verdicts apart).
    m.addMetric(METRICS.promptTokens, MetricUnit.Count, verdict.promptTokens ?? 0);
    m.addMetric(METRICS.completionTokens, MetricUnit.Count, verdict.completionTokens ?? 0);
    const counts = this.perModel.get(verdict.modelId) ?? { verdicts: 0, errors: 0 };
    counts.verdicts++;
    if (verdict.status === "error") counts.errors++;
    this.perModel.set(verdict.modelId, counts);
  }

  /** Publishes what was recorded (call it even when the invocation fails, so errors are counted). */
  flush(): void {
    // An invocation that wrote nothing (a resumed shard) has nothing to publish; Powertools would warn.
    if (this.perModel.size === 0) return;
    for (const [modelId, counts] of this.perModel) {
      const single = this.metrics.singleMetric();
      single.addDimension(METRICS.modelDimension, modelId);
      single.addMetric(METRICS.verdicts, MetricUnit.Count, counts.verdicts);
      const errors = this.metrics.singleMetric();
      errors.addDimension(METRICS.modelDimension, modelId);
      errors.addMetric(METRICS.modelErrors, MetricUnit.Count, counts.errors);
    }
    this.perModel.clear();
    this.metrics.publishStoredMetrics();
  }
}
