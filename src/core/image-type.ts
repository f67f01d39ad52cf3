/** Image formats mmsafe accepts, detected from bytes (file extensions in the dataset are not trusted). */
export const IMAGE_TYPES = {
  jpeg: { mediaType: "image/jpeg", extension: "jpg" },
  png: { mediaType: "image/png", extension: "png" },
  webp: { mediaType: "image/webp", extension: "webp" },
  gif: { mediaType: "image/gif", extension: "gif" },
} as const;
export type ImageType = keyof typeof IMAGE_TYPES;
export type ImageMediaType = (typeof IMAGE_TYPES)[ImageType]["mediaType"];

const startsWith = (bytes: Uint8Array, signature: readonly number[], offset = 0): boolean =>
  bytes.length >= offset + signature.length && signature.every((b, i) => bytes[offset + i] === b);

/**
 * Detects an image's format from its first bytes ("magic numbers"). Needs at most the first 16 bytes.
 * Returns null for anything that is not a JPEG, PNG, WebP or GIF.
 */
export function detectImageType(head: Uint8Array): ImageType | null {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  // RIFF....WEBP
  if (startsWith(head, [0x52, 0x49, 0x46, 0x46]) && startsWith(head, [0x57, 0x45, 0x42, 0x50], 8))
    return "webp";
  if (startsWith(head, [0x47, 0x49, 0x46, 0x38])) return "gif";
  return null;
}
