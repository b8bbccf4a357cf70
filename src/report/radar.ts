/**
 * Radar ("spider") charts of scores in [0, 1], as the CLIP-IQA paper draws an image's look and feel.
 *
 * This module has no imports and touches no Node or DOM API: it is plain string building, so the same compiled
 * file renders the charts of the HTML report (in Node) and of the `clip-iqa serve` web page (in the browser).
 * Keep it that way: a test transpiles it alone and runs it in Chromium.
 *
 * Geometry: axis i of n points at angle -90° + 360°·i/n, i.e. the first axis straight up and the rest clockwise
 * (SVG's y grows downwards, so increasing angles turn clockwise on screen). A value v sits at v·radius from the
 * centre; values are clamped to [0, 1] and a missing (non-finite) value is drawn at the centre and said so in the
 * title. The view box is fitted around the circle and the estimated extents of the labels, so a chart with short
 * labels is not padded for long ones.
 */

export interface RadarAxis {
  /** Axis label (an attribute name). */
  readonly name: string;
  /** The score, expected in [0, 1]. */
  readonly value: number;
  /** A group the axis belongs to (e.g. `look`, `feel`): becomes the class `radar-<group>` for colouring. */
  readonly group?: string;
  /** What the ends of the axis mean, for the point's tooltip, e.g. `1 = noisy, 0 = clean`. */
  readonly hint?: string;
}

export interface RadarOptions {
  /** Accessible name of the chart (its `<title>`); default: every axis with its value. */
  readonly title?: string;
  /** Radius of the value 1, in view-box units; default 64. */
  readonly radius?: number;
  /** Label font size in view-box units; default 10. */
  readonly fontSize?: number;
  /** Grid rings, as fractions of the radius; default quarters. */
  readonly rings?: readonly number[];
  /** Extra classes on the `<svg>` element, besides `radar`. */
  readonly className?: string;
  /** Decimals of values in titles; default 3. */
  readonly digits?: number;
  /**
   * The id of a shared background made by `radarBackground` for the same axis names: the chart then holds only its
   * title, its area and its points (no grid, spokes, labels or per-point titles) and takes its look from
   * `RADAR_CSS`, so that a page of a thousand charts stays small. Default: a complete, self-styled chart.
   */
  readonly background?: string;
}

export interface RadarPoint {
  readonly x: number;
  readonly y: number;
}

export interface RadarAxisLayout {
  /** Angle of the axis in radians (-π/2 is straight up). */
  readonly angle: number;
  /** End of the axis: the value 1. */
  readonly tip: RadarPoint;
  /** Where the (clamped) value lies on the axis. */
  readonly point: RadarPoint;
  /** Label anchor point and its text-anchor. */
  readonly label: RadarPoint & { readonly anchor: 'start' | 'middle' | 'end' };
}

export interface RadarLayout {
  /** View box: origin and size, in the same units as the points. */
  readonly viewBox: { readonly x: number; readonly y: number; readonly width: number; readonly height: number };
  readonly cx: number;
  readonly cy: number;
  readonly radius: number;
  readonly axes: readonly RadarAxisLayout[];
}

const DEFAULT_RADIUS = 64;
const DEFAULT_FONT = 10;
const DEFAULT_RINGS = [0.25, 0.5, 0.75, 1] as const;
/** Average advance of a character of a sans-serif font, in ems: enough to reserve room for labels. */
const CHAR_EM = 0.58;

/** Escapes text for HTML and XML, in content and in quoted attributes alike. */
export function escapeMarkup(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Numbers in path data: two decimals are far below a pixel and keep charts of thousands of cards small. */
const num = (v: number): string => {
  const r = Math.round(v * 100) / 100;
  return Object.is(r, -0) ? '0' : String(r);
};

const clamp01 = (v: number): number => (Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0);

/**
 * Where everything of a radar chart of these values goes. `labels` are only measured (by length) to fit the view
 * box; pass the axis names.
 */
export function radarLayout(values: readonly number[], labels: readonly string[] = [], options: Pick<RadarOptions, 'radius' | 'fontSize'> = {}): RadarLayout {
  const n = values.length;
  if (n < 3) throw new RangeError(`a radar chart needs at least 3 axes, got ${n}`);
  const radius = options.radius ?? DEFAULT_RADIUS;
  const font = options.fontSize ?? DEFAULT_FONT;
  const gap = font * 0.6;
  // Centre at the origin first; the view box is then fitted around whatever was placed.
  let minX = -radius;
  let maxX = radius;
  let minY = -radius;
  let maxY = radius;
  const axes = values.map((value, i): RadarAxisLayout => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / n;
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const v = clamp01(value);
    // Labels beside the top and bottom axes are centred on them; the others start or end at the axis.
    const anchor = Math.abs(cos) < 0.2 ? 'middle' : cos > 0 ? 'start' : 'end';
    const lx = (radius + gap) * cos;
    const ly = (radius + gap) * sin;
    const width = (labels[i] ?? '').length * font * CHAR_EM;
    const left = anchor === 'start' ? lx : anchor === 'end' ? lx - width : lx - width / 2;
    minX = Math.min(minX, left);
    maxX = Math.max(maxX, left + width);
    // The label's baseline is placed by labelDy: above the point at the top, below at the bottom.
    const dy = labelDy(sin) * font;
    minY = Math.min(minY, ly + dy - font * 0.8);
    maxY = Math.max(maxY, ly + dy + font * 0.25);
    return {
      angle,
      tip: { x: radius * cos, y: radius * sin },
      point: { x: v * radius * cos, y: v * radius * sin },
      label: { x: lx, y: ly, anchor },
    };
  });
  const pad = 2;
  const cx = -minX + pad;
  const cy = -minY + pad;
  const shift = (p: RadarPoint): RadarPoint => ({ x: p.x + cx, y: p.y + cy });
  return {
    viewBox: { x: 0, y: 0, width: maxX - minX + 2 * pad, height: maxY - minY + 2 * pad },
    cx,
    cy,
    radius,
    axes: axes.map((a) => ({ angle: a.angle, tip: shift(a.tip), point: shift(a.point), label: { ...shift(a.label), anchor: a.label.anchor } })),
  };
}

/** Baseline offset of a label, in ems, so that it sits outside the circle: above at the top, below at the bottom. */
function labelDy(sin: number): number {
  if (sin < -0.5) return -0.15;
  if (sin > 0.5) return 0.85;
  return 0.35;
}

/** A class name from free text: only lower-case letters, digits and hyphens survive. */
const classPart = (s: string): string => s.toLowerCase().replace(/[^a-z0-9-]+/g, '-');

/**
 * An `<svg>` radar chart of the axes (at least 3), ready to inline in HTML. Styling hooks (classes):
 * `radar`, `radar-grid`, `radar-spokes`, `radar-area`, `radar-point`, `radar-label`, and `radar-<group>` on the
 * points and labels of a group. Presentation attributes give a legible chart without any CSS; a page's CSS
 * overrides them. Every text is escaped.
 */
export function radarSvg(axes: readonly RadarAxis[], options: RadarOptions = {}): string {
  if (options.background !== undefined) return compactRadarSvg(axes, options.background, options);
  const digits = options.digits ?? 3;
  const font = options.fontSize ?? DEFAULT_FONT;
  const layout = radarLayout(
    axes.map((a) => a.value),
    axes.map((a) => a.name),
    options,
  );
  const { cx, cy } = layout;
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(digits) : 'no value');
  const title = options.title ?? axes.map((a) => `${a.name} ${fmt(a.value)}`).join(', ');

  // One path for all rings and one for all spokes: a few elements per chart whatever the axis count.
  const rings = (options.rings ?? DEFAULT_RINGS)
    .map((f) => `M${layout.axes.map((a) => `${num(cx + (a.tip.x - cx) * f)} ${num(cy + (a.tip.y - cy) * f)}`).join('L')}Z`)
    .join('');
  const spokes = layout.axes.map((a) => `M${num(cx)} ${num(cy)}L${num(a.tip.x)} ${num(a.tip.y)}`).join('');
  const area = layout.axes.map((a) => `${num(a.point.x)},${num(a.point.y)}`).join(' ');
  const group = (a: RadarAxis) => (a.group ? ` radar-${classPart(a.group)}` : '');

  const points = axes
    .map((a, i) => {
      const p = layout.axes[i]!.point;
      const tip = `${a.name}: ${fmt(a.value)}${a.hint ? ` (${a.hint})` : ''}`;
      return `<circle class="radar-point${group(a)}" cx="${num(p.x)}" cy="${num(p.y)}" r="2.5"><title>${escapeMarkup(tip)}</title></circle>`;
    })
    .join('');
  const labels = axes
    .map((a, i) => {
      const l = layout.axes[i]!.label;
      const dy = labelDy(Math.sin(layout.axes[i]!.angle));
      return `<text class="radar-label${group(a)}" x="${num(l.x)}" y="${num(l.y)}" dy="${dy}em" text-anchor="${l.anchor}">${escapeMarkup(a.name)}</text>`;
    })
    .join('');
  const vb = layout.viewBox;
  const cls = options.className ? ` ${escapeMarkup(options.className)}` : '';
  return (
    `<svg class="radar${cls}" viewBox="${num(vb.x)} ${num(vb.y)} ${num(vb.width)} ${num(vb.height)}" role="img" font-size="${font}">` +
    `<title>${escapeMarkup(title)}</title>` +
    `<path class="radar-grid" d="${rings}" fill="none" stroke="currentColor" stroke-opacity="0.18"/>` +
    `<path class="radar-spokes" d="${spokes}" fill="none" stroke="currentColor" stroke-opacity="0.18"/>` +
    `<polygon class="radar-area" points="${area}" fill="currentColor" fill-opacity="0.22" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round"/>` +
    `<g class="radar-points" fill="currentColor">${points}</g>` +
    `<g class="radar-labels" fill="currentColor">${labels}</g>` +
    `</svg>`
  );
}

/** Styles of charts drawn with a shared `background` (which carry no presentation attributes of their own). */
export const RADAR_CSS =
  '.radar-area{fill:currentColor;fill-opacity:.22;stroke:currentColor;stroke-width:1.5;stroke-linejoin:round}' +
  '.radar-dots{fill:none;stroke:currentColor;stroke-width:5;stroke-linecap:round}' +
  '.radar-defs{position:absolute;width:0;height:0;overflow:hidden}';

/**
 * What every chart of these axes shares: grid rings, spokes and labels, as an `<svg>` holding a `<g id="…">` in
 * its `<defs>`, to place once in a page; charts drawn with `{ background: id }` show it through `<use>`. Only the
 * axes' names and groups count (values are ignored).
 */
export function radarBackground(axes: readonly Omit<RadarAxis, 'value'>[], id: string, options: Pick<RadarOptions, 'radius' | 'fontSize' | 'rings'> = {}): string {
  const font = options.fontSize ?? DEFAULT_FONT;
  const layout = radarLayout(
    axes.map(() => 0),
    axes.map((a) => a.name),
    options,
  );
  const { cx, cy } = layout;
  const rings = (options.rings ?? DEFAULT_RINGS)
    .map((f) => `M${layout.axes.map((a) => `${num(cx + (a.tip.x - cx) * f)} ${num(cy + (a.tip.y - cy) * f)}`).join('L')}Z`)
    .join('');
  const spokes = layout.axes.map((a) => `M${num(cx)} ${num(cy)}L${num(a.tip.x)} ${num(a.tip.y)}`).join('');
  const labels = axes
    .map((a, i) => {
      const l = layout.axes[i]!.label;
      const dy = labelDy(Math.sin(layout.axes[i]!.angle));
      const group = a.group ? ` radar-${classPart(a.group)}` : '';
      return `<text class="radar-label${group}" x="${num(l.x)}" y="${num(l.y)}" dy="${dy}em" text-anchor="${l.anchor}">${escapeMarkup(a.name)}</text>`;
    })
    .join('');
  return (
    `<svg class="radar-defs" aria-hidden="true" focusable="false"><defs><g id="${escapeMarkup(id)}" font-size="${font}">` +
    `<path class="radar-grid" d="${rings}" fill="none" stroke="currentColor" stroke-opacity="0.18"/>` +
    `<path class="radar-spokes" d="${spokes}" fill="none" stroke="currentColor" stroke-opacity="0.18"/>` +
    `<g class="radar-labels" fill="currentColor">${labels}</g>` +
    `</g></defs></svg>`
  );
}

/**
 * A chart over a shared background: title, area, and the points as one path per group of zero-length round-capped
 * segments (a dot each), a handful of elements whatever the axis count.
 */
function compactRadarSvg(axes: readonly RadarAxis[], background: string, options: RadarOptions): string {
  const digits = options.digits ?? 3;
  const layout = radarLayout(
    axes.map((a) => a.value),
    axes.map((a) => a.name),
    options,
  );
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(digits) : 'no value');
  const title = options.title ?? axes.map((a) => `${a.name} ${fmt(a.value)}`).join(', ');
  const area = layout.axes.map((a) => `${num(a.point.x)},${num(a.point.y)}`).join(' ');
  const groups = new Map<string, string>();
  axes.forEach((a, i) => {
    const p = layout.axes[i]!.point;
    const g = a.group ? classPart(a.group) : '';
    groups.set(g, `${groups.get(g) ?? ''}M${num(p.x)} ${num(p.y)}h0`);
  });
  const dots = [...groups].map(([g, d]) => `<path class="radar-dots${g ? ` radar-${g}` : ''}" d="${d}"/>`).join('');
  const vb = layout.viewBox;
  const cls = options.className ? ` ${escapeMarkup(options.className)}` : '';
  return (
    `<svg class="radar${cls}" viewBox="${num(vb.x)} ${num(vb.y)} ${num(vb.width)} ${num(vb.height)}" role="img">` +
    `<title>${escapeMarkup(title)}</title><use href="#${escapeMarkup(background)}"/>` +
    `<polygon class="radar-area" points="${area}"/>${dots}</svg>`
  );
}
