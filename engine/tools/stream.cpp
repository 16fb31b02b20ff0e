// SPDX-License-Identifier: BSD-2-Clause
//
// Parser of the benchmark stream and the shared engine set-up (see stream.hpp). zlib's gzread
// reads compressed and plain files alike.
#include "stream.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace xe
{

namespace
{

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
	static const char *names[8] = {"phase", "seq",	"type",	 "sym",
				       "oid",	"side", "price", "qty"};
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

namespace
{

struct SplitMix {
	uint64_t x;
	uint64_t next()
	{
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		return z ^ (z >> 31);
	}
};

constexpr int64_t SYN_MID = 1000000;
constexpr size_t SYN_TIMED = 1000000;

void push(Stream *s, char type, uint64_t oid, uint8_t side, int64_t price, uint32_t qty, bool timed)
{
	Msg m{};
	m.oid = oid;
	m.price = price;
	m.qty = qty;
	m.sym = 1;
	m.type = type;
	m.side = side;
	m.timed = timed;
	if (!timed)
		s->prefill++;
	s->msgs.push_back(m);
}

void deep_book(Stream *s)
{
	SplitMix r{42};
	std::vector<uint64_t> live;
	uint64_t oid = 0;
	auto rest = [&](bool timed) {
		uint8_t side = r.next() & 1 ? XE_BUY : XE_SELL;
		int64_t d = 1 + (int64_t)(r.next() % 20000);
		push(s, 'N', oid, side, side == XE_BUY ? SYN_MID - d : SYN_MID + d,
		     (uint32_t)(1 + r.next() % 100), timed);
		live.push_back(oid++);
	};
	for (int i = 0; i < 150000; i++)
		rest(false);
	while (s->msgs.size() - s->prefill < SYN_TIMED) {
		uint64_t k = r.next() % 100;
		if (k < 45) {
			rest(true);
		} else if (k < 90) {
			size_t j = r.next() % live.size();
			push(s, 'C', live[j], XE_BUY, 1, 1, true);
			live[j] = live.back();
			live.pop_back();
		} else {
			uint8_t side = r.next() & 1 ? XE_BUY : XE_SELL;
			int64_t d = 1 + (int64_t)(r.next() % 20);
			push(s, 'I', oid++, side, side == XE_BUY ? SYN_MID + d : SYN_MID - d,
			     (uint32_t)(1 + r.next() % 200), true);
		}
	}
}

void wide_sweep(Stream *s)
{
	SplitMix r{43};
	uint64_t oid = 0;
	const int64_t step = 3;
	auto level = [&](uint8_t side, int64_t t, bool timed) {
		int64_t px = side == XE_BUY ? SYN_MID - step * t : SYN_MID + step * t;
		push(s, 'N', oid++, side, px, 100, timed);
		push(s, 'N', oid++, side, px, 100, timed);
	};
	for (int64_t t = 1; t <= 2000; t++) {
		level(XE_BUY, t, false);
		level(XE_SELL, t, false);
	}
	while (s->msgs.size() - s->prefill < SYN_TIMED) {
		uint8_t side = r.next() & 1 ? XE_BUY : XE_SELL; // the aggressor's
		uint8_t other = side == XE_BUY ? XE_SELL : XE_BUY;
		int64_t n = 50 + (int64_t)(r.next() % 451);
		push(s, 'I', oid++, side, side == XE_BUY ? SYN_MID + step * n : SYN_MID - step * n,
		     (uint32_t)(200 * n), true);
		for (int64_t t = 1; t <= n; t++)
			level(other, t, true);
	}
	s->msgs.resize(s->prefill + SYN_TIMED);
}

} // namespace

bool make_synthetic(const std::string &name, Stream *out)
{
	Stream s;
	if (name == "deep-book")
		deep_book(&s);
	else if (name == "wide-sweep")
		wide_sweep(&s);
	else
		return false;
	s.symbols = 1;
	s.min_price = s.max_price = s.msgs[0].price;
	for (const Msg &m : s.msgs) {
		if (m.type == 'C')
			continue;
		s.min_price = std::min(s.min_price, m.price);
		s.max_price = std::max(s.max_price, m.price);
		s.max_oid = std::max(s.max_oid, m.oid);
	}
	*out = std::move(s);
	return true;
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
