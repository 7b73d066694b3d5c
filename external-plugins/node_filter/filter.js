'use strict';
/**
 * The body filter's policy, free of gRPC so test/filter.test.js can test it alone: the
 * message is decoded with postal-mime (MIME parts, quoted-printable, base64, charsets), then
 * its links are checked against blocked domains and its text against keywords.
 */

const PostalMime = require('postal-mime').default || require('postal-mime');
const { Result } = require('./elemta_plugin');

const KEYS = ['block_domains', 'keywords', 'keyword_action', 'max_urls', 'max_scan_bytes',
  'add_header'];
// Links in text and in HTML attributes; stops at whitespace, quotes and angle brackets.
const URL_RE = /\bhttps?:\/\/[^\s"'<>()]+/gi;

/** Validates the catalog entry's `config` table; an exception refuses the launch. */
function parseConfig(raw) {
  const unknown = Object.keys(raw).filter((k) => !KEYS.includes(k));
  if (unknown.length) throw new Error(`unknown config keys: ${unknown.join(', ')} (keys: ${KEYS.join(', ')})`);
  const list = (key) => {
    const v = raw[key] === undefined ? [] : raw[key];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !x.trim())) {
      throw new Error(`${key} must be a list of non-empty strings`);
    }
    return v.map((x) => x.trim().toLowerCase());
  };
  const config = {
    blockDomains: list('block_domains').map((d) => d.replace(/^\.+|\.+$/g, '')),
    keywords: list('keywords').map((word) => ({ word, rx: wordRegExp(word) })),
    keywordAction: raw.keyword_action === undefined ? 'quarantine' : raw.keyword_action,
    maxUrls: raw.max_urls === undefined ? 0 : raw.max_urls,
    maxScanBytes: raw.max_scan_bytes === undefined ? 1048576 : raw.max_scan_bytes,
    addHeader: raw.add_header === undefined ? 'X-Elemta-Node-Filter' : raw.add_header,
  };
  if (!['reject', 'quarantine'].includes(config.keywordAction)) {
    throw new Error('keyword_action must be "reject" or "quarantine"');
  }
  if (!Number.isInteger(config.maxUrls) || config.maxUrls < 0) {
    throw new Error('max_urls must be a whole number >= 0 (0 = no limit)');
  }
  if (!Number.isInteger(config.maxScanBytes) || config.maxScanBytes < 0) {
    throw new Error('max_scan_bytes must be a whole number >= 0 (0 = no limit)');
  }
  if (typeof config.addHeader !== 'string' || /[\s:]/.test(config.addHeader)) {
    throw new Error('add_header must be a header field name (or "" for none)');
  }
  return config;
}

/** Matches a word or phrase on its own: not inside a longer word, in any letter case. */
function wordRegExp(word) {
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, 'iu');
}

/** Host names of the http(s) links in a text, lower-case, each once. */
function linkHosts(text) {
  const hosts = new Set();
  for (const m of text.matchAll(URL_RE)) {
    try {
      hosts.add(new URL(m[0]).hostname.toLowerCase().replace(/\.$/, ''));
    } catch (e) {
      // not a URL after all (e.g. "http://" alone): nothing to check
    }
  }
  return hosts;
}

function blockedBy(host, blockDomains) {
  return blockDomains.find((d) => host === d || host.endsWith(`.${d}`));
}

/** The decoded text a reader sees: subject, text parts and HTML (tags are kept: links live there). */
async function readMessage(raw) {
  const email = await PostalMime.parse(raw);
  return [email.subject || '', email.text || '', email.html || ''].join('\n');
}

/**
 * Judge one message (raw RFC 5322 bytes); returns a Result. Like SpamAssassin's size limit,
 * a message over max_scan_bytes is passed unscanned (and marked so): decoding a large one
 * costs more than its hook timeout, and bulk spam is small.
 */
async function judge(config, raw, version) {
  if (config.maxScanBytes && raw.length > config.maxScanBytes) {
    const r = Result.cont({ 'links.scanned': 'no' });
    if (config.addHeader) {
      r.addHeader(config.addHeader,
        `skipped (node_filter ${version}; ${raw.length} bytes > max_scan_bytes)`);
    }
    return r;
  }
  const text = await readMessage(raw);
  const hosts = linkHosts(text);
  for (const host of hosts) {
    const d = blockedBy(host, config.blockDomains);
    if (d) {
      return Result.reject('Message contains a link to a blocked site',
        { reason: `link host ${host} matches block_domains ${d}` }).tag({ 'links.blocked': host });
    }
  }
  if (config.maxUrls && hosts.size > config.maxUrls) {
    return Result.reject('Message contains too many links',
      { reason: `${hosts.size} link hosts > max_urls ${config.maxUrls}` });
  }
  for (const { word, rx } of config.keywords) {
    if (rx.test(text)) {
      const reason = `keyword "${word}"`;
      return config.keywordAction === 'reject'
        ? Result.reject('Message refused by content policy', { reason })
        : Result.quarantine(reason);
    }
  }
  const r = Result.cont({ 'links.hosts': String(hosts.size) });
  if (config.addHeader) r.addHeader(config.addHeader, `pass (node_filter ${version}; link hosts: ${hosts.size})`);
  return r;
}

module.exports = { parseConfig, linkHosts, judge };
