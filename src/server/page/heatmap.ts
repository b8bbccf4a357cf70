/**
 * Per-region heat maps over a photo (runs in the browser). A ResNet's dense map has one score per 32×32-pixel
 * region; it is painted into a canvas of that many pixels and drawn scaled to the photo with smoothing on, which
 * is a bilinear upsampling done by the browser, then shown semi-transparent over the image.
 *
 * Colours run from the map's lowest to its highest score (the legend gives both numbers): regions of one photo
 * differ by a few hundredths, and a fixed 0–1 scale would paint most maps a single colour.
 */

export interface MapData {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly scores: readonly number[];
}

/** RdYlBu reversed (ColorBrewer): blue low, pale yellow middle, red high; legible for most colour vision. */
const STOPS: readonly (readonly [number, number, number])[] = [
  [49, 54, 149],
  [69, 117, 180],
  [116, 173, 209],
  [171, 217, 233],
  [255, 255, 191],
  [253, 174, 97],
  [244, 109, 67],
  [215, 48, 39],
  [165, 0, 38],
];

/** The scale as a CSS gradient, for the legend under a map. */
export const RAMP = `linear-gradient(90deg, ${STOPS.map(([r, g, b]) => `rgb(${r}, ${g}, ${b})`).join(', ')})`;

export function colour(t: number): readonly [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i]!;
  const b = STOPS[i + 1]!;
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

export function range(map: MapData): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of map.scores) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return { min, max };
}

/** Paints `map` over `canvas`, sized to `width`×`height` CSS pixels at the screen's pixel density. */
export function drawHeatmap(canvas: HTMLCanvasElement, map: MapData, width: number, height: number): void {
  const { min, max } = range(map);
  const span = max - min || 1;
  const cells = document.createElement('canvas');
  cells.width = map.width;
  cells.height = map.height;
  const cellContext = cells.getContext('2d')!;
  const pixels = cellContext.createImageData(map.width, map.height);
  map.scores.forEach((v, i) => {
    const [r, g, b] = colour((v - min) / span);
    pixels.data.set([r, g, b, 255], i * 4);
  });
  cellContext.putImageData(pixels, 0, 0);

  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * ratio));
  canvas.height = Math.max(1, Math.round(height * ratio));
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext('2d')!;
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = 'high';
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage(cells, 0, 0, canvas.width, canvas.height);
}
