/**
 * What the Bedrock Converse API accepts of an image, as documented for its `ImageBlock`: at most 3.75 MB and
 * 8,000 px on each side, in one of four formats. The byte limit is taken as 3,750,000 (the smaller reading
 * of "3.75 MB"), so an image that fits here fits either way.
 */
export const CONVERSE_IMAGE_LIMITS = {
  maxBytes: 3_750_000,
  maxSidePx: 8_000,
} as const;

/** Converse's image formats, by the media type mmsafe detects from an image's bytes. */
export const CONVERSE_IMAGE_FORMATS = {
  "image/jpeg": "jpeg",
  "image/png": "png",
  "image/gif": "gif",
  "image/webp": "webp",
} as const;
export type ConverseImageFormat = (typeof CONVERSE_IMAGE_FORMATS)[keyof typeof CONVERSE_IMAGE_FORMATS];
