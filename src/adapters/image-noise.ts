/**
 * Diffusion-style Gaussian noise for visual contrastive decoding (VCD).
 *
 * VCD asks a model the same question twice, once with the clean image and once with a noised copy, and
 * contrasts the two answer distributions: what the model still says when it can barely see comes from its
 * language prior. The noised copy is made here with the forward process of a diffusion model.
 *
 * Memory: the noised copy has at most {@link MAX_NOISED_PIXELS} pixels, so a 50-megapixel image costs a
 * Lambda tens of MB beyond its own bytes instead of the 0.5–1.4 GB its full-size decode, noised copy and
 * re-encode took.
 */
import sharp, { type OutputInfo } from "sharp";
import type { ImageMediaType } from "../core/image-type.ts";
import { seededRandom } from "../core/statistics.ts";

/** Formats {@link addDiffusionNoise} writes: the input's own, except GIF which becomes PNG. */
export type NoisedImageMediaType = Exclude<ImageMediaType, "image/gif">;

/** Options of {@link addDiffusionNoise}. */
export interface DiffusionNoiseOptions {
  /**
   * γ in [0, 1]: the share of the variance that is noise. `0` leaves every pixel unchanged, `1` is pure
   * noise (no trace of the image left).
   */
  strength: number;
  /** Seed of the noise; the same (image, strength, seed) always gives byte-identical output. */
  seed: number;
}

/** A noised image, re-encoded. */
export interface NoisedImage {
  bytes: Buffer;
  mediaType: NoisedImageMediaType;
}

/**
 * Most pixels the noised copy has: 2048 × 2048 (4.2 megapixels). A larger image is downscaled to fit,
 * aspect ratio kept, before the noise is added; the clean image is not touched (it is sent as it is).
 *
 * Why this does not change what VCD measures: vision APIs do not look at 50 megapixels either. OpenAI's
 * high-detail mode first fits an image into 2048 × 2048 (then its short side into 768), Anthropic's models
 * scale the long side down to about 1,568 px, and open models resize to their image processor's pixel
 * budget. So the model sees both copies at (at most) about this size anyway, and noising at the size it sees
 * keeps γ the share of noise it gets: noise added at full size and averaged away by the endpoint's downscale
 * would reach the model weaker than γ says. What the cap buys is memory: decoding, noising and re-encoding
 * a 50-megapixel image at full size peaked at 0.5–1.1 GB of RSS here (1.4 GB was reported; the
 * evaluate-shard function has 1,024 MB); at this size a copy is about 13 MB of RGB samples.
 */
export const MAX_NOISED_PIXELS = 2048 * 2048;

/**
 * Largest image decoded at all, in pixels (sharp's `limitInputPixels`): 100 megapixels, as for the report's
 * thumbnails. Above it the image is refused ("could not decode the image"), a guard against decompression
 * bombs (a few KB of PNG can declare gigapixels). Below it the input is streamed: read sequentially and
 * shrunk on load where the format allows (JPEG by 2, 4 or 8 in the decoder, WebP at any scale), so its full
 * size is never held in memory. PNG and GIF have no shrink-on-load, but are decoded row by row through the
 * downscale.
 */
export const MAX_INPUT_PIXELS = 100_000_000;

/**
 * The size of the noised copy of a `width` × `height` image (EXIF orientation applied): the same when it has
 * at most `maxPixels` pixels, else scaled by √(maxPixels / (width·height)), each side rounded down, so the
 * result has at most `maxPixels` pixels and the aspect ratio is kept to within a pixel. A side never goes
 * below 1 px; when one would (a strip thinner than the scale), it is 1 px and the other side alone is capped.
 *
 * Exported (internal) for tests.
 * @internal
 */
export function noisedCopySize(
  width: number,
  height: number,
  maxPixels: number = MAX_NOISED_PIXELS,
): { width: number; height: number } {
  if (width * height <= maxPixels) return { width, height };
  const scale = Math.sqrt(maxPixels / (width * height));
  const scaled = { width: Math.floor(width * scale), height: Math.floor(height * scale) };
  const longest = Math.max(1, Math.floor(maxPixels));
  if (scaled.height < 1) return { width: Math.min(width, longest), height: 1 };
  if (scaled.width < 1) return { width: 1, height: Math.min(height, longest) };
  return scaled;
}

/** Lossy re-encoding quality for JPEG and WebP, high enough that the codec does not wash the noise out. */
const LOSSY_QUALITY = 90;

/** ε is read from a table of this many standard-normal quantiles, indexed by 16 random bits. */
const NORMAL_STEPS = 65_536;
let normalTable: Float32Array | undefined;

/**
 * Φ⁻¹((k + ½)/NORMAL_STEPS) for k in 0..NORMAL_STEPS−1, as Float32: the standard normal's quantiles at the
 * midpoints of 65 536 equally likely slices, so a uniformly random index gives N(0, 1) quantised to its
 * slice. Neighbouring entries are 3.8·10⁻⁵ apart around 0 and still under 10⁻³ at |ε| = 2.5; the extremes
 * are ±4.32, the 1.5·10⁻⁵ of the mass beyond them lands on them (the table's variance is 1 − 2·10⁻⁵).
 * Built on first use, the lower half computed and the upper half mirrored (Φ⁻¹(1 − p) = −Φ⁻¹(p)).
 */
function normalQuantiles(): Float32Array {
  if (normalTable === undefined) {
    normalTable = new Float32Array(NORMAL_STEPS);
    for (let k = 0; k < NORMAL_STEPS / 2; k++) {
      const quantile = inverseNormalCdf((k + 0.5) / NORMAL_STEPS);
      normalTable[k] = quantile;
      normalTable[NORMAL_STEPS - 1 - k] = -quantile;
    }
  }
  return normalTable;
}

/** Coefficients of Acklam's rational approximations to Φ⁻¹, highest power first. */
const ACKLAM = {
  centralNumerator: [
    -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1,
    2.506628277459239,
  ],
  centralDenominator: [
    -5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
    -1.328068155288572e1, 1,
  ],
  tailNumerator: [
    -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ],
  tailDenominator: [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416, 1],
} as const;

/** The polynomial with these coefficients (highest power first) at x, by Horner's rule. */
function polynomial(coefficients: readonly number[], x: number): number {
  let sum = 0;
  for (let i = 0; i < coefficients.length; i++) sum = sum * x + (coefficients[i] as number);
  return sum;
}

/**
 * Φ⁻¹(p) for p in (0, 1) by Acklam's algorithm: a rational function of p − ½ in the centre, and of
 * √(−2 ln p) in each tail (p or 1 − p below 0.02425). Relative error under 1.15·10⁻⁹, far below what the
 * Float32 table keeps.
 */
function inverseNormalCdf(p: number): number {
  const tail = 0.02425;
  if (p < tail || p > 1 - tail) {
    const q = Math.sqrt(-2 * Math.log(p < tail ? p : 1 - p));
    const x = polynomial(ACKLAM.tailNumerator, q) / polynomial(ACKLAM.tailDenominator, q);
    return p < tail ? x : -x;
  }
  const q = p - 0.5;
  const r = q * q;
  return (q * polynomial(ACKLAM.centralNumerator, r)) / polynomial(ACKLAM.centralDenominator, r);
}

/**
 * Adds diffusion forward-process noise to an image and re-encodes it in the same format (GIF becomes PNG).
 *
 * Pixel values v ∈ 0..255 are normalised to x = v/127.5 − 1 ∈ [−1, 1], then
 * x' = √(1−γ)·x + √γ·ε with ε ~ N(0, 1) independent per pixel and channel, clamped to [−1, 1] and mapped
 * back to 0..255. ε comes from an sfc32 generator (Chris Doty-Humphrey's "small fast chaotic" 32-bit
 * generator, which passes TestU01's BigCrush and PractRand) seeded through {@link seededRandom}: each 32-bit output
 * gives two samples, its low and then its high 16 bits each picking one of 65 536 equally likely
 * standard-normal quantiles (see {@link normalQuantiles}), handed to the colour samples in row-major order,
 * channels interleaved. So the output is a pure function of (image, strength, seed); seeds are taken
 * modulo 2^32, as {@link seededRandom} does.
 *
 * Alpha is kept untouched: only colour (or grey) channels are noised, so transparent regions stay
 * transparent. EXIF orientation is applied before noising (the output carries no metadata), so the noised
 * copy shows the picture the same way up as the clean one. Animated GIFs contribute their first frame.
 * An image of more than {@link MAX_NOISED_PIXELS} pixels is downscaled to {@link noisedCopySize} first
 * (sharp's default Lanczos-3 kernel), so its noised copy is smaller than the clean image; smaller images keep
 * their size. Re-encoding: JPEG at quality 90 without chroma subsampling, WebP at quality 90, PNG (also for
 * GIF input).
 *
 * @throws RangeError if `strength` is not a finite number in [0, 1] or `seed` is not a safe integer.
 * @throws Error "could not decode the image" (sharp's error as `cause`) if the bytes are not a readable image
 *   or have more than {@link MAX_INPUT_PIXELS} pixels.
 */
export async function addDiffusionNoise(
  bytes: Uint8Array,
  mediaType: ImageMediaType,
  options: DiffusionNoiseOptions,
): Promise<NoisedImage> {
  const { strength, seed } = options;
  if (!Number.isFinite(strength) || strength < 0 || strength > 1) {
    throw new RangeError(`addDiffusionNoise: strength must be a finite number in [0, 1], got ${strength}`);
  }
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`addDiffusionNoise: seed must be a safe integer, got ${seed}`);
  }

  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await decodeForNoise(bytes);
  } catch (error: unknown) {
    throw new Error(
      `addDiffusionNoise: could not decode the image (${mediaType}, ${bytes.length} bytes): ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  }
  const { data, info } = decoded;
  const channels = info.channels;
  // 2 channels is grey + alpha, 4 is RGB + alpha; 1 and 3 have no alpha.
  const colourChannels = channels === 2 || channels === 4 ? channels - 1 : channels;
  const noised = noisePixels(data, channels, colourChannels, strength, seed);

  const image = sharp(noised, { raw: { width: info.width, height: info.height, channels } });
  switch (mediaType) {
    case "image/jpeg":
      // 4:4:4 keeps the per-channel noise at full resolution; 4:2:0 would average colour noise over 2×2 blocks.
      return {
        bytes: await image.jpeg({ quality: LOSSY_QUALITY, chromaSubsampling: "4:4:4" }).toBuffer(),
        mediaType: "image/jpeg",
      };
    case "image/webp":
      return { bytes: await image.webp({ quality: LOSSY_QUALITY }).toBuffer(), mediaType: "image/webp" };
    case "image/png":
    case "image/gif":
      return { bytes: await image.png().toBuffer(), mediaType: "image/png" };
  }
}

/**
 * The image's pixels, EXIF orientation applied and downscaled to {@link noisedCopySize}: the header is read
 * first (no pixels decoded), then the pixels are streamed through the downscale.
 */
async function decodeForNoise(bytes: Uint8Array): Promise<{ data: Buffer; info: OutputInfo }> {
  const image = sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, sequentialRead: true });
  const { autoOrient } = await image.metadata();
  const size = noisedCopySize(autoOrient.width, autoOrient.height);
  image.autoOrient();
  if (size.width !== autoOrient.width || size.height !== autoOrient.height) {
    // Both sides given with "fill": exactly the computed size (its aspect ratio is the image's to a pixel).
    image.resize({ width: size.width, height: size.height, fit: "fill" });
  }
  return image.raw().toBuffer({ resolveWithObject: true });
}

/**
 * x rounded to an integer and clamped to 0..255, given x + ½ (callers fold the ½ into their tables), without
 * branches. Truncating (`| 0`) rounds every x ≥ −½ to nearest (halves up; a double store into a
 * Uint8ClampedArray rounds them to even, a difference exact ties make and random ε never does); anything
 * below comes out ≤ 0 and is clamped anyway. The clamp is two sign masks: a negative v has v >> 31 = −1
 * and becomes 0, a v above 255 has (255 − v) >> 31 = −1 and becomes 255. The Uint8ClampedArray store does
 * this with data-dependent branches, which noisy samples near the ends of the range mispredict: it took over
 * a third of the loop's time.
 */
function toByte(xPlusHalf: number): number {
  let v = xPlusHalf | 0;
  v &= ~(v >> 31);
  return (v | ((255 - v) >> 31)) & 255;
}

/**
 * The per-pixel loop: interleaved 8-bit samples in, noised samples out. Allocation-free per pixel.
 *
 * In 0..255 units x' = √(1−γ)·x + √γ·ε becomes v' = 127.5 + √(1−γ)·(v − 127.5) + 127.5·√γ·ε; the first two
 * terms only depend on v and come from a 256-entry table (with the ½ of {@link toByte}'s rounding), ε from
 * {@link normalQuantiles}; {@link toByte} rounds and clamps to [0, 255] (= [−1, 1]). The sfc32 state lives
 * in four local int32 variables and its step is written out in the loops: no closure call, no Math.log or
 * Math.sqrt per sample ({@link toByte} is small enough for the JIT to inline). About a fifth of the time Box–Muller over {@link seededRandom} took (≈ 19 against ≈ 95 ms for
 * 1024×1024 RGB on a slow 2-core machine).
 *
 * Exported (internal) so tests can time it without decoding and encoding, and check its statistics.
 * @internal
 */
export function noisePixels(
  data: Uint8Array,
  channels: number,
  colourChannels: number,
  strength: number,
  seed: number,
): Uint8Array {
  const out = new Uint8Array(data.length);
  // Without alpha the loop writes every sample; with alpha it skips the alpha ones, which keep their value.
  if (strength === 0 || colourChannels !== channels) out.set(data);
  if (strength === 0) return out;

  const keep = Math.sqrt(1 - strength);
  const scale = 127.5 * Math.sqrt(strength);
  const base = new Float64Array(256);
  for (let v = 0; v < 256; v++) base[v] = 127.5 + keep * (v - 127.5) + 0.5;
  const normal = normalQuantiles();
  const length = data.length;

  // sfc32, seeded as PractRand does (three words of key, counter 1, twelve outputs discarded); the key comes
  // from seededRandom, whose outputs are multiples of 2^−32, so scaling back gives its 32-bit words exactly.
  const seeder = seededRandom(seed);
  let a = (seeder() * 4_294_967_296) | 0;
  let b = (seeder() * 4_294_967_296) | 0;
  let c = (seeder() * 4_294_967_296) | 0;
  let d = 1;
  let t = 0;
  for (let round = 0; round < 12; round++) {
    t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (((c << 21) | (c >>> 11)) + t) | 0;
  }

  if (colourChannels === channels) {
    // No alpha: every sample is a colour sample, two per 32-bit output.
    const pairsEnd = length - (length % 2);
    for (let i = 0; i < pairsEnd; i += 2) {
      t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + t) | 0;
      out[i] = toByte((base[data[i] as number] as number) + scale * (normal[t & 0xffff] as number));
      out[i + 1] = toByte((base[data[i + 1] as number] as number) + scale * (normal[t >>> 16] as number));
    }
    if (pairsEnd < length) {
      t = (((a + b) | 0) + d) | 0;
      out[pairsEnd] = toByte(
        (base[data[pairsEnd] as number] as number) + scale * (normal[t & 0xffff] as number),
      );
    }
    return out;
  }

  // With alpha: skip the last channel of every pixel, carrying an output's high half across pixels.
  let spare = -1;
  for (let pixel = 0; pixel < length; pixel += channels) {
    const end = pixel + colourChannels;
    for (let i = pixel; i < end; i++) {
      let index: number;
      if (spare >= 0) {
        index = spare;
        spare = -1;
      } else {
        t = (((a + b) | 0) + d) | 0;
        d = (d + 1) | 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) | 0;
        c = (((c << 21) | (c >>> 11)) + t) | 0;
        index = t & 0xffff;
        spare = t >>> 16;
      }
      out[i] = toByte((base[data[i] as number] as number) + scale * (normal[index] as number));
    }
  }
  return out;
}
