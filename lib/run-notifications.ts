import { Stack } from "aws-cdk-lib";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cloudwatchActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as events from "aws-cdk-lib/aws-events";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { RUN_EVENTS } from "../src/deployment/observability.ts";

/** Props of {@link RunNotifications}. */
export interface RunNotificationsProps {
  /** The bus the workflow announces runs on (detail-types of `RUN_EVENTS`). */
  readonly eventBus: events.IEventBus;
  /** Subscribed by e-mail (the address must confirm) when set. */
  readonly email?: string | undefined;
}

const field = (path: string): string => events.EventField.fromPath(path);

/** SNS message of a completed run: the Aggregate output's one-line summary. */
export const COMPLETED_MESSAGE = events.RuleTargetInput.fromText(field("$.detail.summary"));

/** SNS message of a failed run. */
export const FAILED_MESSAGE = events.RuleTargetInput.fromText(
  `mmsafe run ${field("$.detail.runId")} FAILED: ${field("$.detail.error")} — ${field("$.detail.cause")}`,
);

/**
 * Publishes a rule's events to the topic. Unlike `aws-events-targets`' SnsTopic, which lets
 * events.amazonaws.com publish for any rule of any account, the topic policy names the rule.
 */
class TopicTargetOfThisRule implements events.IRuleTarget {
  constructor(
    private readonly topic: sns.ITopic,
    private readonly message: events.RuleTargetInput,
  ) {}

  bind(rule: events.IRuleRef): events.RuleTargetConfig {
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal("events.amazonaws.com")],
        actions: ["sns:Publish"],
        resources: [this.topic.topicArn],
        conditions: { ArnEquals: { "aws:SourceArn": rule.ruleRef.ruleArn } },
      }),
    );
    return { arn: this.topic.topicArn, input: this.message, targetResource: this.topic };
  }
}

/**
 * Run notifications: an encrypted SNS topic that receives a readable message for every completed or failed
 * run (from the workflow's events) and the pipeline's alarms (see {@link RunNotifications.notifyOnAlarm}).
 */
export class RunNotifications extends Construct {
  readonly topic: sns.Topic;
  /**
   * A customer managed key: EventBridge and CloudWatch alarms cannot publish to a topic encrypted with the
   * AWS managed `alias/aws/sns` key, whose policy cannot grant them.
   */
  readonly key: kms.Key;
  /** One rule per detail-type, since each needs its own message. */
  readonly completedRule: events.Rule;
  readonly failedRule: events.Rule;

  constructor(scope: Construct, id: string, props: RunNotificationsProps) {
    super(scope, id);
    this.key = new kms.Key(this, "Key", {
      description: "Encrypts the mmsafe run notification topic",
      enableKeyRotation: true,
    });
    this.topic = new sns.Topic(this, "Topic", {
      displayName: "mmsafe runs",
      masterKey: this.key,
      enforceSSL: true,
    });

    // The rules' targets let EventBridge publish to the topic; publishing to an encrypted topic also needs the
    // key. KMS actions as AWS documents them for publishers to an SSE-KMS topic.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "AllowEventBridgeToPublishToTheTopic",
        principals: [new iam.ServicePrincipal("events.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
      }),
    );
    this.completedRule = new events.Rule(this, "RunCompletedRule", {
      description: "mmsafe run completed: its summary to the notification topic",
      eventBus: props.eventBus,
      eventPattern: { source: [RUN_EVENTS.source], detailType: [RUN_EVENTS.completed] },
      targets: [new TopicTargetOfThisRule(this.topic, COMPLETED_MESSAGE)],
    });
    this.failedRule = new events.Rule(this, "RunFailedRule", {
      description: "mmsafe run failed: run id, error and cause to the notification topic",
      eventBus: props.eventBus,
      eventPattern: { source: [RUN_EVENTS.source], detailType: [RUN_EVENTS.failed] },
      targets: [new TopicTargetOfThisRule(this.topic, FAILED_MESSAGE)],
    });

    if (props.email !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    }
  }

  /** Sends each alarm's ALARM state to the topic; call once, with every alarm of the stack. */
  notifyOnAlarm(alarms: readonly cloudwatch.Alarm[]): void {
    if (alarms.length === 0) return;
    for (const alarm of alarms) alarm.addAlarmAction(new cloudwatchActions.SnsAction(this.topic));
    // CloudWatch publishes alarm actions as cloudwatch.amazonaws.com. Once the topic has a policy of its own
    // (enforceSSL, EventBridge) the default policy that let the account's alarms publish is gone, and an
    // encrypted topic also needs the key: both are granted here, publishing limited to these alarms.
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "AllowPipelineAlarms",
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["sns:Publish"],
        resources: [this.topic.topicArn],
        conditions: {
          ArnLike: { "aws:SourceArn": alarms.map((alarm) => alarm.alarmArn) },
          StringEquals: { "aws:SourceAccount": Stack.of(this).account },
        },
      }),
    );
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "AllowCloudWatchAlarmsToPublishToTheTopic",
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey*"],
        resources: ["*"],
      }),
    );
  }
}
