'use strict';
/**
 * A small Node.js SDK for Elemta external plugins (the elemta.plugin.v1 gRPC hook protocol),
 * on @grpc/grpc-js and @grpc/proto-loader, which load the .proto files at run time.
 *
 *   const { serve, Result } = require('./elemta_plugin');
 *   serve({
 *     name: 'no_bob', version: '1.0.0', protoDir: __dirname + '/proto',
 *     hooks: { rcpt_to: (ctx) => ctx.recipient === 'bob@example.org' ? Result.reject('No') : null },
 *   });
 *
 * serve() does what go-plugin's Serve does: checks the magic cookie and the protocol versions
 * the server offers, listens on a unix socket in the private directory the server gave us,
 * prints the handshake line `1|1|unix|/path|grpc|` on stdout (and nothing else: console.log
 * goes to stderr afterwards), serves grpc.health.v1 (service "plugin") and
 * plugin.GRPCController/Shutdown, answers hook calls on the stream (concurrently, by request
 * id) and unary, and exits when the server that started it is gone.
 *
 * A handler gets the context (the fields of elemta.plugin.v1.Context, snake_case, e.g.
 * ctx.peer_ip, ctx.recipient, ctx.message.raw as a Buffer) and returns a Result, null or
 * undefined (CONTINUE), or a Promise of one. A handler that throws is reported to the server,
 * which applies the plugin's failure policy. Keep this file identical to
 * elemta_core/scaffold_templates/node/elemta_plugin.js (a test pins them equal).
 */

const crypto = require('crypto');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const CORE_PROTOCOL_VERSION = 1;
const APP_PROTOCOL_VERSION = 1;
const MAGIC_COOKIE_KEY = 'ELEMTA_PLUGIN_MAGIC_COOKIE';
const MAGIC_COOKIE_VALUE = '3f1b7c52e0a94d6c8e2f5a71c4d9b806';
const HEALTH_SERVICE = 'plugin';
const PARENT_POLL_MS = 500;

const NOT_A_PLUGIN =
  'This program is an Elemta plugin. It is not meant to be executed directly: list it in a ' +
  '[[plugins.external]] catalog entry and the mail server will launch it, or try it with ' +
  '`elemta plugin test catalog.toml --hook ...`.\n';

/** Hook names as the server spells them (rcpt_to) to protocol enum names (HOOK_RCPT_TO). */
const HOOKS = Object.freeze(Object.fromEntries([
  'connect', 'disconnect', 'helo', 'starttls', 'auth', 'unknown_command', 'mail_from',
  'rcpt_to', 'data_start', 'message', 'after_queue', 'queued', 'deferred', 'bounced',
  'expired', 'delivery_attempt', 'delivery_result', 'rate_limited', 'auth_failed',
  'policy_violation', 'plugin_failed',
].map((h) => [h, `HOOK_${h.toUpperCase()}`])));

const FAILURE_POLICIES = { tempfail: 'FAILURE_POLICY_TEMPFAIL', continue: 'FAILURE_POLICY_CONTINUE',
  reject: 'FAILURE_POLICY_REJECT' };

/** Results a handler returns; `null`/`undefined` means CONTINUE. */
class Result {
  constructor(action = 'ACTION_CONTINUE', { code = 0, enhanced = '', text = '', reason = '' } = {}) {
    this.action = action;
    this.code = code;
    this.enhanced = enhanced;
    this.text = text;
    this.reason = reason;
    this.headers = [];
    this.tags = {};
  }

  static cont(tags = {}) { return new Result().tag(tags); }
  static accept(text = '') { return new Result('ACTION_ACCEPT', { text }); }
  static reject(text = 'Rejected by policy', { code = 550, enhanced = '5.7.1', reason = '' } = {}) {
    return new Result('ACTION_REJECT', { code, enhanced, text, reason });
  }
  static tempfail(text = 'Temporarily deferred, try again later',
    { code = 451, enhanced = '4.7.1', reason = '' } = {}) {
    return new Result('ACTION_TEMPFAIL', { code, enhanced, text, reason });
  }
  static discard(reason = '') { return new Result('ACTION_DISCARD', { reason }); }
  static quarantine(reason) { return new Result('ACTION_QUARANTINE', { reason }); }

  addHeader(name, value) { this.headers.push({ op: 'HEADER_OP_ADD', name, value }); return this; }
  replaceHeader(name, value) { this.headers.push({ op: 'HEADER_OP_REPLACE', name, value }); return this; }
  removeHeader(name, index = 0) { this.headers.push({ op: 'HEADER_OP_REMOVE', name, index }); return this; }
  tag(tags) { Object.assign(this.tags, tags); return this; }
}

/** Log lines on stderr: the server logs them under elemta.plugin.NAME, at the level the
 * first word names. */
function logger() {
  const line = (level) => (...args) => process.stderr.write(
    `${level} ${args.map((a) => (a instanceof Error ? a.stack : String(a))).join(' ')}\n`);
  return { info: line('INFO'), warning: line('WARNING'), error: line('ERROR') };
}

function loadProtos(protoDir) {
  const files = ['elemta/plugin/v1/plugin.proto', 'grpc_health/v1/health.proto',
    'plugin/grpc_controller.proto'];
  const def = protoLoader.loadSync(files, {
    includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def);
}

function checkEnvironment() {
  if (process.env[MAGIC_COOKIE_KEY] !== MAGIC_COOKIE_VALUE) {
    process.stderr.write(NOT_A_PLUGIN);
    process.exit(1);
  }
  const offered = (process.env.PLUGIN_PROTOCOL_VERSIONS || String(APP_PROTOCOL_VERSION))
    .split(',').map((v) => v.trim());
  if (!offered.includes(String(APP_PROTOCOL_VERSION))) {
    process.stderr.write(`protocol version mismatch: the server speaks ${offered.join(',')}, ` +
      `this plugin speaks ${APP_PROTOCOL_VERSION}\n`);
    process.exit(1);
  }
}

/** A plugin definition: its identity, hook handlers and configure callback. */
function definePlugin(spec) {
  const hooks = new Map();
  for (const [hook, fn] of Object.entries(spec.hooks || {})) {
    const handler = typeof fn === 'function' ? { fn, priority: 0 } : fn;
    if (!HOOKS[hook]) throw new Error(`unknown hook ${hook}; hooks are: ${Object.keys(HOOKS).join(', ')}`);
    if (typeof handler.fn !== 'function') throw new Error(`hook ${hook}: give a function`);
    hooks.set(HOOKS[hook], handler);
  }
  const policy = FAILURE_POLICIES[spec.failurePolicy || 'tempfail'];
  if (!policy) throw new Error(`failurePolicy must be one of ${Object.keys(FAILURE_POLICIES).join(', ')}`);
  return {
    name: spec.name,
    describe: {
      name: spec.name, version: spec.version || '0.0.0', description: spec.description || '',
      protocol_version: APP_PROTOCOL_VERSION, priority: spec.priority || 100,
      failure_policy: policy, streaming: spec.streaming !== false,
      hooks: [...hooks].map(([hook, h]) => ({ hook, priority: h.priority || 0 })),
    },
    hooks,
    configure: spec.configure || null,
  };
}

/** One hook call to one HookResponse; never throws. */
async function handle(plugin, req, log) {
  const h = plugin.hooks.get(req.hook);
  if (!h) return { id: req.id, result: {} };
  try {
    const ctx = req.context || {};
    ctx.hook = req.hook;
    const r = await h.fn(ctx);
    if (r === null || r === undefined) return { id: req.id, result: {} };
    if (!(r instanceof Result)) {
      return { id: req.id, error: `handler returned ${typeof r}, not a Result or null` };
    }
    return { id: req.id, result: r };
  } catch (e) {
    log.error(`handler for ${req.hook} failed:`, e);
    return { id: req.id, error: `${e && e.name ? e.name : 'Error'}: ${e && e.message ? e.message : e}` };
  }
}

function pluginService(plugin, log) {
  return {
    Describe(call, cb) { cb(null, plugin.describe); },
    async Configure(call, cb) {
      const req = call.request;
      try {
        const config = req.config_json ? JSON.parse(req.config_json) : {};
        if (config === null || typeof config !== 'object' || Array.isArray(config)) {
          throw new Error('config must be a table');
        }
        if (plugin.configure) {
          await plugin.configure(config, { pluginName: req.plugin_name,
            serverHostname: req.server_hostname, stateDir: req.state_dir });
        }
        cb(null, { error: '' });
      } catch (e) {
        log.error('configure failed:', e);
        cb(null, { error: `${e.name || 'Error'}: ${e.message || e}` });
      }
    },
    async HandleHook(call, cb) { cb(null, await handle(plugin, call.request, log)); },
    Hooks(call) {
      // Answers go out as they are ready (by id): a slow call never holds up a quick one.
      let pending = 0;
      let ended = false;
      call.on('data', (req) => {
        pending += 1;
        handle(plugin, req, log).then((resp) => {
          pending -= 1;
          if (!call.cancelled && call.writable) call.write(resp);
          if (ended && pending === 0) call.end();
        });
      });
      call.on('end', () => { ended = true; if (pending === 0) call.end(); });
      call.on('error', () => {}); // the server went away: nothing to answer
    },
  };
}

function healthService() {
  const answer = (service) => ({ status: service === '' || service === HEALTH_SERVICE ? 'SERVING' : 'SERVICE_UNKNOWN' });
  return {
    Check(call, cb) { cb(null, answer(call.request.service)); },
    Watch(call) { call.write(answer(call.request.service)); }, // open until the client leaves
  };
}

/**
 * Serve a plugin until the server asks it to stop or goes away.
 * spec: { name, version, description, priority, failurePolicy: 'tempfail'|'continue'|'reject',
 *         streaming (default true), protoDir (where elemta/plugin/v1/plugin.proto is),
 *         hooks: { hook_name: fn | { fn, priority } }, configure: async (config, info) => {} }
 */
function serve(spec) {
  checkEnvironment();
  const log = logger();
  const plugin = definePlugin(spec);
  const protos = loadProtos(spec.protoDir || path.join(__dirname, 'proto'));
  const server = new grpc.Server({
    'grpc.max_receive_message_length': -1, // the message hook carries whole messages
    'grpc.max_send_message_length': -1,
  });
  const stop = () => { // finish what is in flight, but never wait on an open stream for long
    setTimeout(() => process.exit(0), 1000).unref();
    server.tryShutdown(() => process.exit(0));
  };
  server.addService(protos.elemta.plugin.v1.Plugin.service, pluginService(plugin, log));
  server.addService(protos.grpc.health.v1.Health.service, healthService());
  server.addService(protos.plugin.GRPCController.service, {
    Shutdown(call, cb) { cb(null, {}); setImmediate(stop); },
  });
  const dir = process.env.PLUGIN_UNIX_SOCKET_DIR || os.tmpdir();
  const socket = path.join(dir, `plugin${crypto.randomBytes(6).toString('hex')}`);
  server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      log.error(`cannot listen on ${socket}:`, err);
      process.exit(1);
    }
    process.stdout.write(`${CORE_PROTOCOL_VERSION}|${APP_PROTOCOL_VERSION}|unix|${socket}|grpc|\n`);
    // stdout carried the handshake line; anything printed later goes to the log.
    console.log = console.info = console.error;
  });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      log.warning(`parent ${parent} is gone; exiting`);
      process.exit(0);
    }
  }, PARENT_POLL_MS).unref();
  return server;
}

module.exports = { serve, definePlugin, handle, Result, HOOKS, logger };
