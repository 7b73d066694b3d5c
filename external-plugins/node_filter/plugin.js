'use strict';
/**
 * node_filter: an Elemta external plugin in Node.js. On the message hook it decodes the body
 * (MIME, quoted-printable, base64) and refuses messages that link to a blocked domain or carry
 * too many links, quarantines (or refuses) messages with listed keywords, and marks passing
 * mail with a header.
 *
 * Config (the catalog entry's `config` table):
 *   block_domains = ["phish.example"]   # a link to it or a subdomain: 550 5.7.1
 *   keywords = ["wire transfer"]        # a word or phrase in the text: keyword_action
 *   keyword_action = "quarantine"       # or "reject"
 *   max_urls = 0                        # more distinct link hosts: 550 (0 = no limit)
 *   max_scan_bytes = 1048576            # larger messages pass unscanned (0 = no limit)
 *   add_header = "X-Elemta-Node-Filter" # added to passing mail ("" = none)
 */

const path = require('path');
const { serve } = require('./elemta_plugin');
const { parseConfig, judge } = require('./filter');

const VERSION = '1.0.0';
let config = parseConfig({});

serve({
  name: 'node_filter',
  version: VERSION,
  description: 'Body link and keyword filter on the message hook',
  priority: 70,
  failurePolicy: 'tempfail',
  protoDir: path.join(__dirname, '..', '..', 'proto'),
  configure(raw) {
    config = parseConfig(raw); // throws on a bad table: the server refuses the configuration
  },
  hooks: {
    async message(ctx) {
      if (!ctx.message || !ctx.message.raw) return null;
      return judge(config, ctx.message.raw, VERSION);
    },
  },
});
