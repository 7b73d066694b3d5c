'use strict';
// Unit tests of the filter's policy (npm test). The whole plugin, through a real mail server
// and SMTP, is tested in tests/integration/langs/test_node_plugin.py.
const test = require('node:test');
const assert = require('node:assert');
const { parseConfig, linkHosts, judge } = require('../filter');

const mail = (headers, body) => Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`);
const config = parseConfig({ block_domains: ['phish.example'], keywords: ['wire transfer'], max_urls: 3 });

test('link hosts are found in text and HTML, each once', () => {
  const hosts = linkHosts('see https://a.example/x and http://A.example/y <a href="https://b.example:8443/z">');
  assert.deepStrictEqual([...hosts].sort(), ['a.example', 'b.example']);
});

test('a link to a blocked domain or its subdomain is refused', async () => {
  const r = await judge(config, mail(['Subject: hi'], 'click https://login.phish.example/now\r\n'), '1');
  assert.strictEqual(r.action, 'ACTION_REJECT');
  assert.strictEqual(r.code, 550);
  assert.match(r.reason, /login\.phish\.example matches block_domains phish\.example/);
  const ok = await judge(config, mail(['Subject: hi'], 'see https://notphish.example/\r\n'), '1');
  assert.strictEqual(ok.action, 'ACTION_CONTINUE');
});

test('links hidden by quoted-printable and base64 are decoded first', async () => {
  const qp = mail(['Subject: x', 'MIME-Version: 1.0', 'Content-Type: text/plain',
    'Content-Transfer-Encoding: quoted-printable'], 'https://phi=\r\nsh.example/\r\n');
  assert.strictEqual((await judge(config, qp, '1')).action, 'ACTION_REJECT');
  const b64 = mail(['Subject: x', 'MIME-Version: 1.0', 'Content-Type: multipart/alternative; boundary=b'],
    ['--b', 'Content-Type: text/html', 'Content-Transfer-Encoding: base64', '',
      Buffer.from('<a href="http://phish.example/">x</a>').toString('base64'), '--b--', ''].join('\r\n'));
  assert.strictEqual((await judge(config, b64, '1')).action, 'ACTION_REJECT');
});

test('keywords match whole words in any case and quarantine by default', async () => {
  const r = await judge(config, mail(['Subject: urgent'], 'Please make the WIRE  transfer today\r\n'), '1');
  assert.strictEqual(r.action, 'ACTION_QUARANTINE');
  assert.strictEqual(r.reason, 'keyword "wire transfer"');
  const inWord = await judge(config, mail(['Subject: x'], 'rewire transfers\r\n'), '1');
  assert.strictEqual(inWord.action, 'ACTION_CONTINUE');
  const rejecting = parseConfig({ keywords: ['lottery'], keyword_action: 'reject' });
  assert.strictEqual((await judge(rejecting, mail(['Subject: Lottery!'], 'x'), '1')).action, 'ACTION_REJECT');
});

test('too many link hosts are refused; clean mail passes with a header and a tag', async () => {
  const many = 'https://a.example https://b.example https://c.example https://d.example';
  assert.strictEqual((await judge(config, mail(['Subject: x'], many), '1')).action, 'ACTION_REJECT');
  const r = await judge(config, mail(['Subject: x'], 'https://a.example/\r\n'), '1.2');
  assert.strictEqual(r.action, 'ACTION_CONTINUE');
  assert.deepStrictEqual(r.tags, { 'links.hosts': '1' });
  assert.deepStrictEqual(r.headers, [{ op: 'HEADER_OP_ADD', name: 'X-Elemta-Node-Filter',
    value: 'pass (node_filter 1.2; link hosts: 1)' }]);
});

test('a message over max_scan_bytes passes unscanned, marked as such', async () => {
  const small = parseConfig({ block_domains: ['phish.example'], max_scan_bytes: 100 });
  const raw = mail(['Subject: x'], `https://phish.example/ ${'x'.repeat(100)}`);
  const r = await judge(small, raw, '1');
  assert.strictEqual(r.action, 'ACTION_CONTINUE');
  assert.deepStrictEqual(r.tags, { 'links.scanned': 'no' });
  assert.strictEqual(r.headers[0].value, `skipped (node_filter 1; ${raw.length} bytes > max_scan_bytes)`);
  const unlimited = parseConfig({ block_domains: ['phish.example'], max_scan_bytes: 0 });
  assert.strictEqual((await judge(unlimited, raw, '1')).action, 'ACTION_REJECT');
});

test('a bad config is refused with the key named', () => {
  assert.throws(() => parseConfig({ block_domain: [] }), /unknown config keys: block_domain/);
  assert.throws(() => parseConfig({ keywords: 'x' }), /keywords must be a list/);
  assert.throws(() => parseConfig({ keyword_action: 'drop' }), /keyword_action/);
  assert.throws(() => parseConfig({ max_urls: -1 }), /max_urls/);
  assert.throws(() => parseConfig({ max_scan_bytes: 1.5 }), /max_scan_bytes/);
  assert.throws(() => parseConfig({ add_header: 'X Bad' }), /add_header/);
});
