package streamsuite;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The stock ticker's contract (docs/src/contract.md) written as a Kafka Streams application, the reference the
 * suite's benchmark runs beside: validate the trades, repartition by symbol, the day's open/high/low/close/volume
 * per symbol in the exchange's time zone (a processor: Kafka Streams' windows are fixed lengths of time, and a day
 * of 23 or 25 hours is not one), hopping moving windows of 5 minutes advancing by 1 (the DSL), each update of the
 * day's statistics to stock-daily-stats and its change to the single-partition stock-daily-changes, and the second
 * phase of the top-10 ranking every symbol's change of the day. State is JSON in RocksDB with changelogs, as the
 * suite's is.
 *
 * <p>Arguments: bootstrap application-id input-prefix output-prefix guarantee(at-least-once|exactly-once)
 * threads cache(on|off) commit-interval-ms(or default) state-dir.
 */
public final class StockTicker {
    static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);
    static final ZoneId ZONE = ZoneId.of("America/New_York");
    static final long GRACE_MS = Duration.ofHours(4).toMillis();
    static final Pattern SYMBOL = Pattern.compile("[A-Z0-9.-]{1,16}");
    static final BigDecimal HUNDRED = BigDecimal.valueOf(100);

    /** One symbol's day so far, as kept in the store. */
    public record Day(BigDecimal open, long openTs, BigDecimal close, long closeTs, BigDecimal high, BigDecimal low, long volume, long trades) {
        Day add(BigDecimal price, long volume, long ts) {
            BigDecimal o = ts < openTs ? price : open;
            long ot = ts < openTs ? ts : openTs;
            BigDecimal c = ts >= closeTs ? price : close;
            long ct = ts >= closeTs ? ts : closeTs;
            return new Day(o, ot, c, ct, high.max(price), low.min(price), this.volume + volume, trades + 1);
        }

        BigDecimal changePct() {
            return close.subtract(open).multiply(HUNDRED).divide(open, 4, RoundingMode.HALF_UP);
        }
    }

    /** One moving window's running figures. */
    public record Moving(BigDecimal min, BigDecimal max, BigDecimal sum, long trades) {
        Moving add(BigDecimal price) {
            return trades == 0 ? new Moving(price, price, price, 1) : new Moving(min.min(price), max.max(price), sum.add(price), trades + 1);
        }
    }

    /** JSON through Jackson, for the input and the stores. */
    static final class JsonSerde<T> implements Serde<T> {
        private final Class<T> type;

        JsonSerde(Class<T> type) {
            this.type = type;
        }

        @Override
        public Serializer<T> serializer() {
            return (topic, value) -> {
                try {
                    return value == null ? null : JSON.writeValueAsBytes(value);
                } catch (IOException e) {
                    throw new SerializationException(e);
                }
            };
        }

        @Override
        public Deserializer<T> deserializer() {
            return (topic, bytes) -> {
                try {
                    return bytes == null ? null : JSON.readValue(bytes, type);
                } catch (IOException e) {
                    throw new SerializationException(e);
                }
            };
        }
    }

    /** Event time is the trade's own `ts`, read from the value already decoded. */
    static final class TradeTime implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            JsonNode ts = record.value() instanceof JsonNode v ? v.get("ts") : null;
            return ts == null ? -1 : OffsetDateTime.parse(ts.asText()).toInstant().toEpochMilli();
        }
    }

    static boolean valid(JsonNode t) {
        JsonNode symbol = t.get("symbol"), price = t.get("price"), volume = t.get("volume");
        return symbol != null && SYMBOL.matcher(symbol.asText()).matches() && price != null
                && new BigDecimal(price.asText()).signum() > 0 && volume != null && volume.asLong() > 0;
    }

    static long dayEnd(LocalDate date) {
        return date.plusDays(1).atStartOfDay(ZONE).toInstant().toEpochMilli();
    }

    /** The days in the exchange's zone: each trade folded into its symbol's day, the day's statistics sent on. */
    static final class Daily implements Processor<String, JsonNode, String, ObjectNode> {
        private ProcessorContext<String, ObjectNode> context;
        private KeyValueStore<String, Day> days;
        private KeyValueStore<String, String> table;
        private long observed = Long.MIN_VALUE;

        @Override
        public void init(ProcessorContext<String, ObjectNode> context) {
            this.context = context;
            this.days = context.getStateStore("daily-windows");
            this.table = context.getStateStore("daily-stats");
        }

        @Override
        public void process(Record<String, JsonNode> r) {
            long ts = r.timestamp();
            observed = Math.max(observed, ts);
            LocalDate date = Instant.ofEpochMilli(ts).atZone(ZONE).toLocalDate();
            if (dayEnd(date) + GRACE_MS <= observed) {
                return; // late for its day
            }
            BigDecimal price = new BigDecimal(r.value().get("price").asText());
            long volume = r.value().get("volume").asLong();
            String key = r.key() + "/" + date;
            Day previous = days.get(key);
            Day day = previous == null ? new Day(price, ts, price, ts, price, price, volume, 1) : previous.add(price, volume, ts);
            days.put(key, day);
            ObjectNode stats = JSON.createObjectNode();
            stats.put("symbol", r.key()).put("date", date.toString()).put("open", day.open().toPlainString())
                    .put("high", day.high().toPlainString()).put("low", day.low().toPlainString())
                    .put("close", day.close().toPlainString()).put("volume", day.volume()).put("trades", day.trades())
                    .put("change_pct", day.changePct().toPlainString());
            table.put(key, stats.toString());
            context.forward(r.withValue(stats));
        }
    }

    /** The ranking's one task: every symbol's latest change per day, and the day's lists when they change. */
    static final class Ranking implements Processor<String, String, String, String> {
        private record Entry(BigDecimal change, String symbol) {}

        private static final Comparator<Entry> UP = Comparator.comparing(Entry::change).reversed().thenComparing(Entry::symbol);
        private static final Comparator<Entry> DOWN = Comparator.comparing(Entry::change).thenComparing(Entry::symbol);

        private final class Index {
            final Map<String, Entry> latest = new HashMap<>();
            final Map<String, String> closes = new HashMap<>();
            final TreeSet<Entry> gainers = new TreeSet<>(UP);
            final TreeSet<Entry> losers = new TreeSet<>(DOWN);

            void set(String symbol, BigDecimal change, String close) {
                Entry old = latest.put(symbol, new Entry(change, symbol));
                if (old != null) {
                    gainers.remove(old);
                    losers.remove(old);
                }
                if (change.signum() > 0) {
                    gainers.add(new Entry(change, symbol));
                } else if (change.signum() < 0) {
                    losers.add(new Entry(change, symbol));
                }
                closes.put(symbol, close);
            }

            String top10(String date) {
                ObjectNode top = JSON.createObjectNode().put("date", date);
                list(top.putArray("gainers"), gainers);
                list(top.putArray("losers"), losers);
                return top.toString();
            }

            private void list(ArrayNode out, TreeSet<Entry> ranked) {
                ranked.stream().limit(10).forEach(e -> out.addObject().put("symbol", e.symbol())
                        .put("change_pct", e.change().toPlainString()).put("close", closes.get(e.symbol())));
            }
        }

        private ProcessorContext<String, String> context;
        private KeyValueStore<String, String> changes;
        private KeyValueStore<String, String> lists;
        private final Map<String, Index> days = new HashMap<>();
        private long observed = Long.MIN_VALUE;

        @Override
        public void init(ProcessorContext<String, String> context) {
            this.context = context;
            this.changes = context.getStateStore("daily-changes");
            this.lists = context.getStateStore("top10");
            try (KeyValueIterator<String, String> all = changes.all()) {
                all.forEachRemaining(kv -> {
                    JsonNode c = parse(kv.value);
                    index(c.get("date").asText()).set(c.get("symbol").asText(), new BigDecimal(c.get("change_pct").asText()), c.get("close").asText());
                });
            }
        }

        private Index index(String date) {
            return days.computeIfAbsent(date, d -> new Index());
        }

        @Override
        public void process(Record<String, String> r) {
            observed = Math.max(observed, r.timestamp());
            JsonNode c = parse(r.value());
            String date = c.get("date").asText(), symbol = c.get("symbol").asText();
            if (dayEnd(LocalDate.parse(date)) + GRACE_MS <= observed) {
                return; // late for its day
            }
            changes.put(date + "/" + symbol, r.value());
            Index day = index(date);
            day.set(symbol, new BigDecimal(c.get("change_pct").asText()), c.get("close").asText());
            String top = day.top10(date);
            if (!top.equals(lists.get(date))) {
                lists.put(date, top);
                context.forward(new Record<>(date, top, r.timestamp()));
            }
        }

        private static JsonNode parse(String json) {
            try {
                return JSON.readTree(json);
            } catch (IOException e) {
                throw new SerializationException(e);
            }
        }
    }

    public static void main(String[] args) throws InterruptedException {
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        if (args.length != 9) {
            System.err.println("usage: bootstrap application-id input-prefix output-prefix guarantee threads cache(on|off) commit-interval-ms state-dir");
            System.exit(2);
        }
        String in = args[2], out = args[3];
        Properties p = new Properties();
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args[4].equals("exactly-once") ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(args[5]));
        if (args[6].equals("off")) {
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
        }
        if (!args[7].equals("default")) {
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(args[7]));
        }
        p.put(StreamsConfig.STATE_DIR_CONFIG, args[8]);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        Serde<String> text = Serdes.String();
        Serde<JsonNode> json = new JsonSerde<>(JsonNode.class);
        StreamsBuilder b = new StreamsBuilder();
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("daily-windows"), text, new JsonSerde<>(Day.class)).withCachingEnabled());
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("daily-stats"), text, text).withCachingEnabled());
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("daily-changes"), text, text).withCachingEnabled());
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("top10"), text, text).withCachingEnabled());

        KStream<String, JsonNode> bySymbol = b.stream(in + "trades", Consumed.with(text, json).withTimestampExtractor(new TradeTime()))
                .filter((k, t) -> valid(t))
                .selectKey((k, t) -> t.get("symbol").asText())
                .repartition(Repartitioned.<String, JsonNode>as("by-symbol").withKeySerde(text).withValueSerde(json));

        KStream<String, ObjectNode> stats = bySymbol.process(Daily::new, "daily-windows", "daily-stats");
        stats.mapValues(ObjectNode::toString).to(out + "stock-daily-stats", Produced.with(text, text));
        stats.processValues(() -> new org.apache.kafka.streams.processor.api.FixedKeyProcessor<String, ObjectNode, String>() {
            private org.apache.kafka.streams.processor.api.FixedKeyProcessorContext<String, String> context;

            @Override
            public void init(org.apache.kafka.streams.processor.api.FixedKeyProcessorContext<String, String> context) {
                this.context = context;
            }

            @Override
            public void process(org.apache.kafka.streams.processor.api.FixedKeyRecord<String, ObjectNode> r) {
                ObjectNode s = r.value();
                ObjectNode change = JSON.createObjectNode().put("symbol", s.get("symbol").asText()).put("date", s.get("date").asText())
                        .put("change_pct", s.get("change_pct").asText()).put("close", s.get("close").asText())
                        .put("ts", Instant.ofEpochMilli(r.timestamp()).toString());
                context.forward(r.withValue(change.toString()));
            }
        }).to(out + "stock-daily-changes", Produced.with(text, text));

        bySymbol.groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(5), Duration.ofMinutes(5)).advanceBy(Duration.ofMinutes(1)))
                .aggregate(() -> new Moving(null, null, BigDecimal.ZERO, 0), (symbol, t, m) -> m.add(new BigDecimal(t.get("price").asText())),
                        Materialized.<String, Moving, WindowStore<Bytes, byte[]>>as("moving-windows").withKeySerde(text).withValueSerde(new JsonSerde<>(Moving.class)))
                .toStream()
                .map((w, m) -> KeyValue.pair(w.key(), JSON.createObjectNode().put("symbol", w.key())
                        .put("window_start", w.window().startTime().toString()).put("window_end", w.window().endTime().toString())
                        .put("min", m.min().toPlainString()).put("max", m.max().toPlainString())
                        .put("avg", m.sum().divide(BigDecimal.valueOf(m.trades()), 4, RoundingMode.HALF_UP).toPlainString())
                        .put("trades", m.trades()).toString()))
                .to(out + "stock-moving-stats", Produced.with(text, text));

        b.stream(out + "stock-daily-changes", Consumed.with(text, text))
                .process(Ranking::new, "daily-changes", "top10")
                .to(out + "stock-top10", Produced.with(text, text));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }));
        streams.start();
        done.await();
    }
}
