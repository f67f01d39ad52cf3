/**
 * Thumbnails for report.html: an image downscaled to a small WebP `data:` URL, so the report stays one
 * self-contained file (about 1–2 KB per item; 1,500 items stay a few MB).
 */
import sharp from "sharp";

export interface ThumbnailOptions {
  /** Longest side in pixels (default 64); smaller images are not enlarged. */
  maxSide?: number;
  /** Byte budget of the encoded image (default 2,048); quality, then size, drop until it fits. */
  maxBytes?: number;
}

/** Quality and size steps tried in order until the encoded image fits the budget. */
const STEPS = [
  { scale: 1, quality: 45 },
  { scale: 1, quality: 25 },
  { scale: 0.75, quality: 25 },
  { scale: 0.5, quality: 20 },
] as const;

/**
 * Downscales an image (JPEG, PNG, WebP, GIF: first frame; EXIF orientation applied) to a WebP data URL.
 * Throws when the bytes are not a decodable image; callers show a placeholder instead.
 */
export async function thumbnailDataUrl(bytes: Uint8Array, options: ThumbnailOptions = {}): Promise<string> {
  const maxSide = options.maxSide ?? 64;
  const maxBytes = options.maxBytes ?? 2048;
  // Decode once, shrinking on load where the format allows (JPEG, WebP): big photos cost little.
  const { data, info } = await sharp(bytes, {
    failOn: "error",
    animated: false,
    limitInputPixels: 100_000_000,
  })
    .rotate()
    .resize({ width: maxSide, height: maxSide, fit: "inside", withoutEnlargement: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const raw = { width: info.width, height: info.height, channels: info.channels };
  let encoded: Buffer | null = null;
  for (const step of STEPS) {
    let image = sharp(data, { raw });
    if (step.scale < 1)
      image = image.resize({
        width: Math.max(1, Math.round(info.width * step.scale)),
        height: Math.max(1, Math.round(info.height * step.scale)),
      });
    encoded = await image.webp({ quality: step.quality, alphaQuality: 50, effort: 4 }).toBuffer();
    if (encoded.length <= maxBytes) break;
  }
  return `data:image/webp;base64,${(encoded ?? Buffer.alloc(0)).toString("base64")}`;
}
