import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";

/** The S3 operations mmsafe needs, bound to one bucket. */
export interface ObjectStore {
  readonly bucket: string;
  getBytes(key: string): Promise<Uint8Array>;
  getText(key: string): Promise<string>;
  /** The object's text, or null when it does not exist. */
  getTextIfExists(key: string): Promise<string | null>;
  put(key: string, body: Uint8Array | string, contentType: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Every object under `prefix` with its ETag (which changes whenever it is written again); all pages. */
  list?(prefix: string): Promise<ListedObject[]>;
}

/** One listed object: its key and ETag. */
export interface ListedObject {
  key: string;
  etag: string | null;
}

/** Raised when an object mmsafe expects is missing; the message names the key and what to do. */
export class ObjectNotFoundError extends Error {
  override readonly name = "ObjectNotFoundError";
  constructor(
    readonly key: string,
    hint: string,
    options?: ErrorOptions,
  ) {
    super(`s3 object ${key} does not exist: ${hint}`, options);
  }
}

const isNotFound = (error: unknown): boolean =>
  error instanceof NoSuchKey ||
  error instanceof NotFound ||
  (error instanceof Error && (error.name === "NoSuchKey" || error.name === "NotFound"));

export class S3ObjectStore implements ObjectStore {
  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
  ) {}

  async getBytes(key: string): Promise<Uint8Array> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new ObjectNotFoundError(key, "the object has no body");
      return await out.Body.transformToByteArray();
    } catch (error: unknown) {
      if (isNotFound(error))
        throw new ObjectNotFoundError(key, "was the dataset uploaded (mmsafe dataset upload)?", {
          cause: error,
        });
      throw error;
    }
  }

  async getText(key: string): Promise<string> {
    return new TextDecoder().decode(await this.getBytes(key));
  }

  async getTextIfExists(key: string): Promise<string | null> {
    try {
      return await this.getText(key);
    } catch (error: unknown) {
      if (error instanceof ObjectNotFoundError) return null;
      throw error;
    }
  }

  async put(key: string, body: Uint8Array | string, contentType: string): Promise<void> {
    const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: bytes,
        // Always stated: the SDK leaves Content-Length out for an empty body (an empty responses file, say)
        // and then warns about a "Stream of unknown length".
        ContentLength: bytes.byteLength,
        ContentType: contentType,
      }),
    );
  }

  async list(prefix: string): Promise<ListedObject[]> {
    const listed: ListedObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) if (o.Key) listed.push({ key: o.Key, etag: o.ETag ?? null });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return listed;
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error: unknown) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }
}
