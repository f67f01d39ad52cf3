/**
 * The ways a local run or session ends early, in a module of their own so that the CLI can tell them apart
 * without loading the runner (which starts servers and loads the handlers).
 */

/** The process that serves a home's data folder, as it describes itself in `<home>/aws/servers.json`. */
export interface ServersHolder {
  /** The servers' process. */
  pid: number;
  /** The mmsafe process they serve (their parent). */
  ownerPid: number;
  host: string;
  s3Port: number;
  dynamodbPort: number;
  startedAt: string;
}

/** How the servers' process ended when nobody asked it to. */
export interface ServersExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Raised when another live process already serves the data folder (and attaching was not asked for). */
export class EmbeddedAwsInUseError extends Error {
  override readonly name = "EmbeddedAwsInUseError";
  constructor(
    readonly dataDir: string,
    readonly holder: ServersHolder,
  ) {
    super(
      `${dataDir} is served by another mmsafe process (pid ${holder.ownerPid}, since ${holder.startedAt})`,
    );
  }
}

/** Raised when the servers' process ends before it serves (its own message is on stderr, which it inherits). */
export class EmbeddedAwsStartError extends Error {
  override readonly name = "EmbeddedAwsStartError";
}

/** Raised when another mmsafe process uses the home; the message says what to do (exit code 2). */
export class LocalHomeInUseError extends Error {
  override readonly name = "LocalHomeInUseError";
  constructor(
    readonly home: string,
    readonly holder: ServersHolder,
    options?: ErrorOptions,
  ) {
    super(
      `another mmsafe process (pid ${holder.ownerPid}, since ${holder.startedAt}) is using --home ${home}: ` +
        "wait for it to end, or give this one another --home",
      options,
    );
  }
}

/** A run stopped by Ctrl-C or SIGTERM; the run is marked INTERRUPTED when it had been recorded. */
export class RunInterruptedError extends Error {
  override readonly name = "RunInterruptedError";
  constructor(
    readonly runId: string,
    readonly signal: string,
    /** Verdicts the run holds (null when they could not be counted). */
    readonly kept: number | null,
    /** Verdicts planned, when the run got as far as Plan. */
    readonly planned: number | null,
    /** Whether the run record now says INTERRUPTED (false before Plan recorded the run). */
    readonly marked: boolean,
    /** Whether the calls in flight had all landed before the count (else `kept` is a lower bound). */
    readonly settled = true,
  ) {
    super(`run ${runId} interrupted (${signal})`);
  }
}

/** The embedded S3/DynamoDB servers' process ended during the run (killed, crashed). */
export class EmbeddedServersExitedError extends Error {
  override readonly name = "EmbeddedServersExitedError";
  constructor(
    readonly runId: string,
    readonly exit: ServersExit,
  ) {
    const how = exit.signal ? `were killed (${exit.signal})` : `exited with code ${exit.code}`;
    super(`the embedded S3/DynamoDB servers (pid ${exit.pid}) ${how} during run ${runId}`);
  }
}

/** A fault that struck the process during a run (an unhandled rejection, say): the run was stopped. */
export class RunFaultError extends Error {
  override readonly name = "RunFaultError";
  constructor(
    readonly runId: string,
    cause: unknown,
  ) {
    super(
      `run ${runId} stopped by an unexpected error: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/** A command named a local run that this home has no record of. */
export class RunNotKnownError extends Error {
  override readonly name = "RunNotKnownError";
}

/** A rejudge names no run, or one this home does not have. */
export class RunToRejudgeError extends Error {
  override readonly name = "RunToRejudgeError";
}
