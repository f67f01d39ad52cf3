import { Stack, TimeZone } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as scheduler from "aws-cdk-lib/aws-scheduler";
import { StepFunctionsStartExecution } from "aws-cdk-lib/aws-scheduler-targets";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { describeZodError, executionInputSchema } from "../src/core/schemas.ts";
import type { ScheduleConfig } from "../src/deployment/deploy-config.ts";

/** Props of {@link RunSchedules}. */
export interface RunSchedulesProps {
  /** The workflow every schedule starts. */
  readonly stateMachine: sfn.IStateMachine;
  /** `schedules` of the deploy config. */
  readonly schedules: readonly ScheduleConfig[];
}

/**
 * The execution input a schedule starts the workflow with: its configured input plus its own name, so a
 * scheduled run is compared with the previous run of the same schedule. Checked against the execution input
 * schema here, so a bad schedule fails `cdk synth` rather than every scheduled run.
 */
export function scheduledExecutionInput(
  schedule: ScheduleConfig,
): ScheduleConfig["input"] & { schedule: string } {
  const input = { ...schedule.input, schedule: schedule.name };
  const parsed = executionInputSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(describeZodError(parsed.error, `input of schedule "${schedule.name}"`));
  }
  return input;
}

/** Fails synth on a time zone name the runtime's time zone database does not know. */
function checkTimeZone(schedule: ScheduleConfig): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: schedule.timezone });
  } catch (error: unknown) {
    throw new Error(`schedule "${schedule.name}": unknown time zone "${schedule.timezone}"`, {
      cause: error,
    });
  }
}

/**
 * One EventBridge Scheduler schedule per configured schedule (disabled ones included, in state DISABLED, so
 * they can be switched on in the console), each starting the workflow with its input. They share one role
 * that can start executions of this state machine and do nothing else.
 */
export class RunSchedules extends Construct {
  /** The role EventBridge Scheduler assumes to start executions; none without schedules. */
  readonly role: iam.Role | undefined;
  /** The schedules, by configured name. */
  readonly schedules: ReadonlyMap<string, scheduler.Schedule>;

  constructor(scope: Construct, id: string, props: RunSchedulesProps) {
    super(scope, id);
    const role =
      props.schedules.length === 0
        ? undefined
        : new iam.Role(this, "Role", {
            description: "Lets EventBridge Scheduler start mmsafe evaluation runs",
            assumedBy: new iam.ServicePrincipal("scheduler.amazonaws.com", {
              // Only schedules of this account may assume it (confused-deputy protection).
              conditions: { StringEquals: { "aws:SourceAccount": Stack.of(this).account } },
            }),
          });
    this.role = role;

    const schedules = new Map<string, scheduler.Schedule>();
    for (const schedule of props.schedules) {
      checkTimeZone(schedule);
      const input = scheduledExecutionInput(schedule);
      schedules.set(
        schedule.name,
        new scheduler.Schedule(this, `Schedule-${schedule.name}`, {
          description: schedule.description ?? `mmsafe scheduled run "${schedule.name}"`,
          schedule: scheduler.ScheduleExpression.expression(
            schedule.expression,
            TimeZone.of(schedule.timezone),
          ),
          enabled: schedule.enabled,
          // Runs start at the scheduled time: a later run is compared with this one, so they should not drift.
          timeWindow: scheduler.TimeWindow.off(),
          // StepFunctionsStartExecution grants the role states:StartExecution on this state machine only.
          target: new StepFunctionsStartExecution(props.stateMachine, {
            role,
            input: scheduler.ScheduleTargetInput.fromText(JSON.stringify(input)),
          }),
        }),
      );
    }
    this.schedules = schedules;
  }
}
