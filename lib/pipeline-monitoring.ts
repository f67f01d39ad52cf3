import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { METRICS } from "../src/deployment/observability.ts";

/** Props of {@link PipelineMonitoring}. */
export interface PipelineMonitoringProps {
  readonly stateMachine: sfn.StateMachine;
  /** The pipeline's functions, by the name shown on the dashboard. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Alarm when more than this percentage of verdicts in 15 minutes are model errors. */
  readonly modelErrorRatePercent: number;
}

/** Period of the model error rate alarm: long enough for a few shards' worth of verdicts. */
export const MODEL_ERROR_RATE_PERIOD = Duration.minutes(15);

/** A custom metric the handlers emit (Powertools, dimension `service`). */
function customMetric(metricName: string, statistic: string, label?: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS.namespace,
    metricName,
    dimensionsMap: { service: METRICS.service },
    statistic,
    period: Duration.minutes(5),
    ...(label === undefined ? {} : { label }),
  });
}

/**
 * The pipeline's dashboard (executions, Lambda health, model verdicts, errors, latency and tokens) and its
 * alarms: failed or timed-out executions and a model error rate above the configured threshold.
 */
export class PipelineMonitoring extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  readonly executionsFailedAlarm: cloudwatch.Alarm;
  readonly executionsTimedOutAlarm: cloudwatch.Alarm;
  readonly modelErrorRateAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: PipelineMonitoringProps) {
    super(scope, id);
    const { stateMachine } = props;
    const fiveMinuteSum = { period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM };

    this.executionsFailedAlarm = stateMachine
      .metricFailed(fiveMinuteSum)
      .createAlarm(this, "ExecutionsFailed", {
        alarmDescription: "An mmsafe evaluation run failed (its notification names the error).",
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    this.executionsTimedOutAlarm = stateMachine
      .metricTimedOut(fiveMinuteSum)
      .createAlarm(this, "ExecutionsTimedOut", {
        alarmDescription: "An mmsafe evaluation run timed out.",
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    const modelErrorRate = new cloudwatch.MathExpression({
      label: "Model error rate (%)",
      expression: "100 * errors / verdicts",
      usingMetrics: {
        errors: customMetric(METRICS.modelErrors, cloudwatch.Stats.SUM),
        verdicts: customMetric(METRICS.verdicts, cloudwatch.Stats.SUM),
      },
      period: MODEL_ERROR_RATE_PERIOD,
    });
    this.modelErrorRateAlarm = modelErrorRate.createAlarm(this, "ModelErrorRate", {
      alarmDescription: `More than ${props.modelErrorRatePercent}% of verdicts in 15 minutes were model errors (endpoint down, key revoked, quota exhausted?).`,
      threshold: props.modelErrorRatePercent,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      // No verdicts means no run, not a failing model.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.days(7),
    });
    const wide = 12;
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 24 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Executions",
        width: wide,
        left: [
          stateMachine.metricStarted(fiveMinuteSum),
          stateMachine.metricSucceeded(fiveMinuteSum),
          stateMachine.metricFailed(fiveMinuteSum),
          stateMachine.metricTimedOut(fiveMinuteSum),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: "Execution time",
        width: wide,
        left: [
          stateMachine.metricTime({ statistic: cloudwatch.Stats.p(50), label: "p50" }),
          stateMachine.metricTime({ statistic: cloudwatch.Stats.p(95), label: "p95" }),
        ],
      }),
    );
    this.dashboard.addWidgets(
      ...Object.entries(props.functions).map(
        ([name, fn]) =>
          new cloudwatch.GraphWidget({
            title: `Lambda ${name}`,
            width: 8,
            left: [fn.metricErrors(fiveMinuteSum), fn.metricThrottles(fiveMinuteSum)],
            right: [
              fn.metricDuration({ statistic: cloudwatch.Stats.p(50), label: "Duration p50" }),
              fn.metricDuration({ statistic: cloudwatch.Stats.p(95), label: "Duration p95" }),
            ],
          }),
      ),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: "Verdicts and model errors",
        width: 8,
        left: [
          customMetric(METRICS.verdicts, cloudwatch.Stats.SUM),
          customMetric(METRICS.modelErrors, cloudwatch.Stats.SUM),
        ],
        right: [modelErrorRate],
        rightAnnotations: [
          { value: props.modelErrorRatePercent, label: "Alarm threshold", color: cloudwatch.Color.RED },
        ],
      }),
      new cloudwatch.GraphWidget({
        title: "Model latency (ms)",
        width: 8,
        left: [
          customMetric(METRICS.modelLatency, cloudwatch.Stats.p(50), "p50"),
          customMetric(METRICS.modelLatency, cloudwatch.Stats.p(95), "p95"),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: "Tokens",
        width: 8,
        left: [
          customMetric(METRICS.promptTokens, cloudwatch.Stats.SUM),
          customMetric(METRICS.completionTokens, cloudwatch.Stats.SUM),
        ],
      }),
    );
  }

  /** Every alarm, for the notification topic. */
  get alarms(): cloudwatch.Alarm[] {
    return [this.executionsFailedAlarm, this.executionsTimedOutAlarm, this.modelErrorRateAlarm];
  }
}
