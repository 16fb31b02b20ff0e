// SPDX-License-Identifier: BSD-2-Clause
//
// Parser of the benchmark stream and the shared engine set-up (see stream.hpp). zlib's gzread
// reads compressed and plain files alike.
#include "stream.hpp"

#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace xe {

namespace {

bool to_i64(const char *f, size_t len, int64_t *v)
{
	if (len == 0 || len > 19)
		return false;
	bool neg = f[0] == '-';
	size_t i = neg ? 1 : 0;
	if (i == len)
		return false;
	int64_t x = 0;
	for (; i < len; i++) {
		if (f[i] < '0' || f[i] > '9')
			return false;
		x = x * 10 + (f[i] - '0');
	}
	*v = neg ? -x : x;
	return true;
}

} // namespace

bool load_stream(const std::string &path, Stream *out, std::string *err)
{
	gzFile gz = gzopen(path.c_str(), "rb");
	if (!gz) {
		*err = path + ": " + std::strerror(errno ? errno : ENOENT);
		return false;
	}
	gzbuffer(gz, 1 << 20);
	std::string text;
	std::vector<char> buf(1 << 20);
	int n;
	while ((n = gzread(gz, buf.data(), (unsigned)buf.size())) > 0)
		text.append(buf.data(), (size_t)n);
	int zerr = 0;
	const char *zmsg = gzerror(gz, &zerr);
	if (n < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR)) {
		*err = path + ": read error: " + zmsg;
		gzclose(gz);
		return false;
	}
	gzclose(gz);

	const char *p = text.data(), *end = p + text.size();
	const char *nl = (const char *)memchr(p, '\n', text.size());
	if (!nl || std::string(p, nl) != "phase,seq,type,sym,oid,side,price,qty") {
		*err = path + ": line 1: expected header phase,seq,type,sym,oid,side,price,qty";
		return false;
	}
	p = nl + 1;
	Stream s;
	s.msgs.reserve(text.size() / 28);
	bool first_price = true;
	static const char *names[8] = {"phase", "seq", "type", "sym", "oid", "side", "price", "qty"};
	for (size_t line = 2; p < end; line++) {
		const char *eol = (const char *)memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		const char *f[8] = {};
		size_t len[8] = {};
		int k = 0;
		for (const char *q = p; k < 9;) {
			const char *c = (const char *)memchr(q, ',', (size_t)(le - q));
			const char *fe = c ? c : le;
			if (k < 8) {
				f[k] = q;
				len[k] = (size_t)(fe - q);
			}
			k++;
			if (!c)
				break;
			q = c + 1;
		}
		bool blank = le == p;
		p = eol < end ? eol + 1 : end;
		if (blank)
			continue;
		auto bad = [&](int i) {
			*err = path + ": line " + std::to_string(line) + ": bad field '" +
			       (i < 8 ? names[i] : "count") + "'";
			return false;
		};
		if (k != 8)
			return bad(8);
		Msg m{};
		int64_t v;
		if (len[0] != 1 || (f[0][0] != 'P' && f[0][0] != 'T'))
			return bad(0);
		m.timed = f[0][0] == 'T';
		if (len[2] != 1 || (f[2][0] != 'N' && f[2][0] != 'C' && f[2][0] != 'I'))
			return bad(2);
		m.type = f[2][0];
		if (!to_i64(f[3], len[3], &v) || v < 0 || v > 65000)
			return bad(3);
		m.sym = (uint32_t)v + 1;
		if (!to_i64(f[4], len[4], &v) || v < 0)
			return bad(4);
		m.oid = (uint64_t)v;
		if (len[5] != 1 || (f[5][0] != 'B' && f[5][0] != 'S'))
			return bad(5);
		m.side = f[5][0] == 'B' ? XE_BUY : XE_SELL;
		if (!to_i64(f[6], len[6], &v) || v <= 0)
			return bad(6);
		m.price = v;
		if (!to_i64(f[7], len[7], &v) || v <= 0 || v > UINT32_MAX)
			return bad(7);
		m.qty = (uint32_t)v;
		if (!m.timed) {
			if (s.prefill != s.msgs.size()) {
				*err = path + ": line " + std::to_string(line) +
				       ": prefill after timed messages";
				return false;
			}
			s.prefill++;
		}
		if (m.sym > s.symbols)
			s.symbols = m.sym;
		if (m.oid > s.max_oid)
			s.max_oid = m.oid;
		if (first_price || m.price < s.min_price)
			s.min_price = m.price;
		if (first_price || m.price > s.max_price)
			s.max_price = m.price;
		first_price = false;
		s.msgs.push_back(m);
	}
	if (s.msgs.empty()) {
		*err = path + ": no messages";
		return false;
	}
	*out = std::move(s);
	return true;
}

void deepen(Stream *s, uint32_t factor)
{
	if (factor <= 1)
		return;
	int64_t f = factor;
	auto down = [f](int64_t p) { return p / f * f; };
	auto up = [f](int64_t p) { return (p + f - 1) / f * f; };
	for (Msg &m : s->msgs) {
		bool buy = m.side == XE_BUY;
		// Resting orders move away from the other side, IOCs towards it, so what crossed
		// still crosses and what rested still rests.
		if (m.type == 'N')
			m.price = buy ? down(m.price) : up(m.price);
		else if (m.type == 'I')
			m.price = buy ? up(m.price) : down(m.price);
		if (m.price < s->min_price)
			s->min_price = m.price;
		if (m.price > s->max_price)
			s->max_price = m.price;
	}
}

xe_engine *make_engine(const Stream &s, uint32_t max_orders)
{
	xe_engine_config cfg{};
	cfg.max_orders = max_orders;
	cfg.max_symbols = s.symbols;
	cfg.max_sessions = 1;
	xe_engine *e = xe_engine_create(&cfg);
	if (!e)
		return nullptr;
	for (uint32_t sym = 1; sym <= s.symbols; sym++) {
		xe_symbol_config c{};
		c.symbol_id = sym;
		c.lot_size = 1;
		c.tick_size = 1;
		c.band_low = s.min_price > 1024 ? s.min_price - 1024 : 1;
		c.band_high = s.max_price + 1024;
		if (xe_engine_add_symbol(e, &c) != 0) {
			xe_engine_destroy(e);
			return nullptr;
		}
	}
	return e;
}

} // namespace xe
