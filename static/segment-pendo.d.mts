// Types of segment-pendo.mjs, written beside it by `segment-pendo build --format esm` (TypeScript reads
// segment-pendo.d.mts for an import of segment-pendo.mjs).
// Self-contained: the shape below is analytics.js 2.0's destination Plugin, so TypeScript accepts the plugin
// in AnalyticsBrowser.load({ plugins }) and analytics.register() without any other package for its types.

/** The destination plugin that sends Segment's identify, group, track and page calls to Pendo. */
export interface SegmentPendoPlugin {
  /** The name analytics.js knows it by, as in an event's integrations object. */
  name: 'Pendo Web (segment-pendo)';
  /** Also honoured in integrations: Segment's own Pendo destinations, so that one setting covers all. */
  alternativeNames: string[];
  type: 'destination';
  isLoaded(): boolean;
  /** Called by analytics.js; only then does the plugin touch the page (it adds Pendo's agent). */
  load(context: unknown, analytics: unknown): Promise<unknown>;
  track<Context>(context: Context): Context;
  identify<Context>(context: Context): Context;
  group<Context>(context: Context): Context;
  page<Context>(context: Context): Context;
}

/**
 * Pass it to analytics.js 2.0 once: `AnalyticsBrowser.load({ writeKey, plugins: [pendoPlugin] })` or
 * `analytics.register(pendoPlugin)`. Importing it has no side effect, so server-side rendering may import it.
 */
export declare const pendoPlugin: SegmentPendoPlugin;
