/**
 * Images for the Converse API: sent as the dataset's bytes when they fit its limits
 * ({@link CONVERSE_IMAGE_LIMITS}), else downscaled and re-encoded until they do. Never sent as they are when
 * too large (Bedrock would refuse the whole request), and never left out.
 *
 * A downscaled image keeps its format (GIF becomes PNG: only its first frame is kept) and aspect ratio. It is
 * first re-encoded at the largest size the side limit allows; when that is still too many bytes, it is
 * shrunk by the square root of the excess (bytes grow with the pixel count), with a 10 % margin, until it
 * fits. The same input always gives the same bytes.
 */
import type { ImageMediaType } from "../../core/image-type.ts";
import type { SentImage } from "../../core/verdicts.ts";
import { CONVERSE_IMAGE_FORMATS, CONVERSE_IMAGE_LIMITS, type ConverseImageFormat } from "./limits.ts";

/** An image ready for a Converse `ImageBlock`; `sent` is set when it differs from the dataset's bytes. */
export interface ConverseImage {
  format: ConverseImageFormat;
  bytes: Uint8Array;
  sent: SentImage | null;
}

/** Re-encodings tried at most before giving up (each shrinks the image by at least 10 %). */
const MAX_ENCODINGS = 8;

/** Thrown when an image cannot be made to fit (undecodable bytes, or still too large after every try). */
export class ImageFitError extends Error {
  override readonly name = "ImageFitError";
}

/**
 * The image as Converse accepts it. Reads the dimensions of every image (its header only), so an image
 * whose bytes fit but whose sides do not is caught too.
 */
export async function fitForConverse(
  bytes: Uint8Array,
  mediaType: ImageMediaType,
  limits: { maxBytes: number; maxSidePx: number } = CONVERSE_IMAGE_LIMITS,
): Promise<ConverseImage> {
  // Loaded on first use: only Bedrock runs pay for sharp's start-up.
  const { default: sharp } = await import("sharp");
  let meta: { width?: number; height?: number };
  try {
    meta = await sharp(bytes).metadata();
  } catch (error: unknown) {
    throw new ImageFitError(`cannot read the image (${mediaType}, ${bytes.length} bytes)`, { cause: error });
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const format = CONVERSE_IMAGE_FORMATS[mediaType];
  const tooLarge = bytes.length > limits.maxBytes;
  const tooWide = Math.max(width, height) > limits.maxSidePx;
  if (!tooLarge && !tooWide) return { format, bytes, sent: null };

  const outFormat: ConverseImageFormat = format === "gif" ? "png" : format;
  let scale = Math.min(1, limits.maxSidePx / Math.max(width, height));
  for (let i = 0; i < MAX_ENCODINGS; i++) {
    const w = Math.max(1, Math.floor(width * scale));
    const h = Math.max(1, Math.floor(height * scale));
    const resized = sharp(bytes).resize(w, h, { fit: "fill" });
    const encoded =
      outFormat === "jpeg"
        ? resized.jpeg({ quality: 90, mozjpeg: false })
        : outFormat === "webp"
          ? resized.webp({ quality: 90 })
          : resized.png({ compressionLevel: 9 });
    const out = await encoded.toBuffer();
    if (out.length <= limits.maxBytes) {
      return {
        format: outFormat,
        bytes: out,
        sent: {
          mediaType: `image/${outFormat}`,
          bytes: out.length,
          width: w,
          height: h,
          original: { mediaType, bytes: bytes.length, width, height },
          reason: [
            tooLarge
              ? `${bytes.length.toLocaleString("en-US")} bytes > ${limits.maxBytes.toLocaleString("en-US")}`
              : "",
            tooWide ? `${width}×${height} px > ${limits.maxSidePx} px a side` : "",
          ]
            .filter((r) => r !== "")
            .join(", "),
        },
      };
    }
    scale *= Math.min(0.9, Math.sqrt(limits.maxBytes / out.length) * 0.9);
  }
  throw new ImageFitError(
    `the image (${mediaType}, ${bytes.length} bytes, ${width}×${height}) still exceeds ${limits.maxBytes} bytes after ${MAX_ENCODINGS} re-encodings`,
  );
}
