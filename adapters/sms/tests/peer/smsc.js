// An SMSC stand-in for atgw-sms's tests, built on the npm `smpp` package (an independent SMPP
// implementation): it checks the bind credentials, answers submit_sm, sends a delivery receipt
// for each accepted message, and reports everything as JSON lines on stdout.
//
//   node smsc.js <system_id> <password> [<tls_cert.pem> <tls_key.pem>]
//
// With a certificate and key it speaks SMPP over TLS (the library's SecureServer).
// The password is compared, never printed. Commands on stdin, one per line, each confirmed
// with {"event":"ok","command":...} on stdout:
//   accept          answer submits with ESME_ROK (the start state)
//   refuse          answer every submit with ESME_RTHROTTLED until `accept`
//   throttle <n>    answer the next n submits with ESME_RTHROTTLED, then accept
//   reject <n>      answer the next n submits with ESME_RINVDSTADR (a refusal for good)
//   silent <n>      leave the next n submits unanswered
//   kick            close every session (the SMSC went away)
//   unbind          send unbind on every session (the SMSC ends it politely)
//
// Output lines: listening {port}; bind {ok, system_id, command}; submit {destination,
// dest_addr_ton, source_addr, data_coding, registered_delivery, text, octets, event_id,
// status, message_id}; receipt_acked {message_id}; enquire_link; unbind.
'use strict';

const smpp = require('smpp');
const readline = require('readline');

const fs = require('fs');

const [systemId, password, certFile, keyFile] = process.argv.slice(2);
if (!systemId || !password) {
  process.stderr.write('usage: node smsc.js <system_id> <password>\n');
  process.exit(2);
}

const EVENT_ID_TAG = 0x1400;
let mode = 'accept';
let throttleNext = 0;
let rejectNext = 0;
let silentNext = 0;
let nextId = 1;
const sessions = new Set();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
    p(d.getUTCHours()) + p(d.getUTCMinutes());
}

const tlsOptions = certFile && keyFile
  ? { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }
  : {};

const server = smpp.createServer(tlsOptions, (session) => {
  sessions.add(session);
  session.on('close', () => sessions.delete(session));
  session.on('error', () => sessions.delete(session));
  let bound = false;

  const bind = (command) => (pdu) => {
    const ok = pdu.system_id === systemId && pdu.password === password;
    out({ event: 'bind', command, ok, system_id: pdu.system_id, interface_version: pdu.interface_version });
    if (!ok) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVPASWD }));
      session.close();
      return;
    }
    bound = true;
    session.send(pdu.response({ system_id: 'smsc-peer' }));
  };
  session.on('bind_transceiver', bind('bind_transceiver'));
  session.on('bind_transmitter', bind('bind_transmitter'));

  session.on('submit_sm', (pdu) => {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const raw = pdu[EVENT_ID_TAG];
    const sm = pdu.short_message || {};
    const text = typeof sm === 'string' ? sm : (sm.message || '');
    let status = smpp.ESME_ROK;
    if (silentNext > 0) {
      silentNext -= 1;
      status = null;
    } else if (rejectNext > 0) {
      rejectNext -= 1;
      status = smpp.ESME_RINVDSTADR;
    } else if (mode === 'refuse' || throttleNext > 0) {
      if (throttleNext > 0) throttleNext -= 1;
      status = smpp.ESME_RTHROTTLED;
    }
    const messageId = status === smpp.ESME_ROK ? 'm' + (nextId++) : '';
    out({
      event: 'submit',
      destination: pdu.destination_addr,
      dest_addr_ton: pdu.dest_addr_ton,
      dest_addr_npi: pdu.dest_addr_npi,
      source_addr: pdu.source_addr,
      source_addr_ton: pdu.source_addr_ton,
      data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery,
      text,
      // The library turned the octets into text through the GSM 03.38 table; count its
      // septets again (extension characters are two) to check the 160 limit from this side.
      septets: smpp.gsmCoder.encode(text, 0).length,
      event_id: Buffer.isBuffer(raw) ? raw.toString('ascii') : null,
      status,
      message_id: messageId,
    });
    if (status === null) return;
    session.send(pdu.response({ command_status: status, message_id: messageId }));
    if (status === smpp.ESME_ROK && (pdu.registered_delivery & 1)) {
      setTimeout(() => {
        const now = stamp(new Date());
        const body = 'id:' + messageId + ' sub:001 dlvrd:001 submit date:' + now + ' done date:' + now +
          ' stat:DELIVRD err:000 text:' + text.slice(0, 20).replace(/[^ -~]/g, '?');
        session.deliver_sm({
          source_addr: pdu.destination_addr,
          destination_addr: pdu.source_addr,
          esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
          short_message: Buffer.from(body, 'ascii'),
          receipted_message_id: messageId,
          message_state: smpp.MESSAGE_STATE.DELIVERED,
        }, (resp) => {
          out({ event: 'receipt_acked', message_id: messageId, status: resp.command_status });
        });
      }, 20);
    }
  });

  session.on('enquire_link', (pdu) => {
    out({ event: 'enquire_link' });
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    out({ event: 'unbind' });
    session.send(pdu.response());
    session.close();
  });
});

server.listen(0, '127.0.0.1', () => {
  out({ event: 'listening', port: server.address().port });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  const n = parseInt(arg || '1', 10);
  switch (command) {
    case 'accept': mode = 'accept'; throttleNext = 0; break;
    case 'refuse': mode = 'refuse'; break;
    case 'throttle': throttleNext = n; break;
    case 'reject': rejectNext = n; break;
    case 'silent': silentNext = n; break;
    case 'kick': for (const s of sessions) s.socket.destroy(); break;
    case 'unbind':
      for (const s of sessions) {
        s.unbind((resp) => out({ event: 'unbind_resp', status: resp.command_status }));
      }
      break;
    default: out({ event: 'unknown_command', command }); return;
  }
  out({ event: 'ok', command });
}).on('close', () => process.exit(0));
