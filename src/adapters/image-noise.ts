/**
 * Diffusion-style Gaussian noise for visual contrastive decoding (VCD).
 *
 * VCD asks a model the same question twice, once with the clean image and once with a noised copy, and
 * contrasts the two answer distributions: what the model still says when it can barely see comes from its
 * language prior. The noised copy is made here with the forward process of a diffusion model.
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

/** Lossy re-encoding quality for JPEG and WebP, high enough that the codec does not wash the noise out. */
const LOSSY_QUALITY = 90;

/**
 * Box–Muller angles are quantised to this many steps around the circle and their cosines read from a
 * table: Math.cos and Math.sin were two thirds of the per-pixel cost. The step, 2π/65536 ≈ 1e-4 rad, moves
 * a sample by at most 1e-4·|ε|, far below one grey level.
 */
const ANGLE_STEPS = 65_536;
let cosineTable: Float64Array | undefined;

/** cos(2π·(k + ½)/ANGLE_STEPS) for k in 0..ANGLE_STEPS−1; sin is the same table shifted by a quarter turn. */
function cosines(): Float64Array {
  if (cosineTable === undefined) {
    cosineTable = new Float64Array(ANGLE_STEPS);
    for (let k = 0; k < ANGLE_STEPS; k++) cosineTable[k] = Math.cos((2 * Math.PI * (k + 0.5)) / ANGLE_STEPS);
  }
  return cosineTable;
}

/**
 * Adds diffusion forward-process noise to an image and re-encodes it in the same format (GIF becomes PNG).
 *
 * Pixel values v ∈ 0..255 are normalised to x = v/127.5 − 1 ∈ [−1, 1], then
 * x' = √(1−γ)·x + √γ·ε with ε ~ N(0, 1) independent per pixel and channel, clamped to [−1, 1] and mapped
 * back to 0..255. ε comes from {@link seededRandom} through Box–Muller (both outputs of each pair of
 * uniforms are used, pixels in row-major order, channels interleaved), so the output is a pure function of
 * (image, strength, seed). Seeds are taken modulo 2^32, as {@link seededRandom} does.
 *
 * Alpha is kept untouched: only colour (or grey) channels are noised, so transparent regions stay
 * transparent. EXIF orientation is applied before noising (the output carries no metadata), so the noised
 * copy shows the picture the same way up as the clean one. Animated GIFs contribute their first frame.
 * Re-encoding: JPEG at quality 90 without chroma subsampling, WebP at quality 90, PNG (also for GIF input).
 *
 * @throws RangeError if `strength` is not a finite number in [0, 1] or `seed` is not a safe integer.
 * @throws Error "could not decode the image" (sharp's error as `cause`) if the bytes are not a readable image.
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
    decoded = await sharp(bytes).autoOrient().raw().toBuffer({ resolveWithObject: true });
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
 * The per-pixel loop: interleaved 8-bit samples in, noised samples out. Allocation-free per pixel.
 *
 * In 0..255 units x' = √(1−γ)·x + √γ·ε becomes v' = 127.5 + √(1−γ)·(v − 127.5) + 127.5·√γ·ε; the first two
 * terms only depend on v and come from a 256-entry table. The Uint8ClampedArray does the clamping to
 * [0, 255] (= [−1, 1]) and the rounding.
 */
function noisePixels(
  data: Uint8Array,
  channels: number,
  colourChannels: number,
  strength: number,
  seed: number,
): Uint8ClampedArray {
  const out = new Uint8ClampedArray(data.length);
  out.set(data);
  if (strength === 0) return out;

  const keep = Math.sqrt(1 - strength);
  const scale = 127.5 * Math.sqrt(strength);
  const base = new Float64Array(256);
  for (let v = 0; v < 256; v++) base[v] = 127.5 + keep * (v - 127.5);

  const random = seededRandom(seed);
  const cos = cosines();
  const mask = ANGLE_STEPS - 1;
  const quarter = ANGLE_STEPS / 4;
  const length = data.length;

  // Box–Muller: radius √(−2 ln u₁) (1 − u₁ keeps the logarithm's argument in (0, 1]), angle 2π·u₂; the
  // pair gives ε = r·cos θ to one colour sample and r·sin θ = r·cos(θ − π/2) to the next. Both loops hand
  // the k-th normal to the k-th colour sample in row-major, channel-interleaved order.
  if (colourChannels === channels) {
    // No alpha: every sample is a colour sample, two per pair of uniforms.
    const pairsEnd = length - (length % 2);
    for (let i = 0; i < pairsEnd; i += 2) {
      const radius = scale * Math.sqrt(-2 * Math.log(1 - random()));
      const step = Math.floor(random() * ANGLE_STEPS);
      out[i] = (base[data[i] as number] as number) + radius * (cos[step] as number);
      out[i + 1] =
        (base[data[i + 1] as number] as number) + radius * (cos[(step - quarter) & mask] as number);
    }
    if (pairsEnd < length) {
      const radius = scale * Math.sqrt(-2 * Math.log(1 - random()));
      const step = Math.floor(random() * ANGLE_STEPS);
      out[pairsEnd] = (base[data[pairsEnd] as number] as number) + radius * (cos[step] as number);
    }
    return out;
  }

  // With alpha: skip the last channel of every pixel, carrying the pair's second normal across pixels.
  let spare = 0;
  let hasSpare = false;
  for (let pixel = 0; pixel < length; pixel += channels) {
    const end = pixel + colourChannels;
    for (let i = pixel; i < end; i++) {
      let epsilon: number;
      if (hasSpare) {
        epsilon = spare;
        hasSpare = false;
      } else {
        const radius = Math.sqrt(-2 * Math.log(1 - random()));
        const step = Math.floor(random() * ANGLE_STEPS);
        epsilon = radius * (cos[step] as number);
        spare = radius * (cos[(step - quarter) & mask] as number);
        hasSpare = true;
      }
      out[i] = (base[data[i] as number] as number) + scale * epsilon;
    }
  }
  return out;
}
