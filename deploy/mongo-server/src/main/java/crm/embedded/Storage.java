package crm.embedded;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import java.util.stream.Stream;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.DatabaseResolver;
import de.bwaldvogel.mongo.backend.DocumentWithPosition;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/**
 * The H2 backend's database and collection, changed where profiling showed them slow.
 *
 * <ul>
 *   <li>Documents are stored as BSON ({@link BsonDocumentType}), not in Java serialization.
 *   <li>Indexes are kept in memory and rebuilt from the documents when a collection opens:
 *       unique ones in {@link MemoryUniqueIndex}, the others in {@link SecondaryIndex}, which
 *       the library itself leaves empty.
 *   <li>A filter whose {@code _id} is a value or an {@code $in} of values looks those
 *       documents up and applies the whole filter to them. mongo-java-server uses an index
 *       only when a filter's fields are exactly the index's fields, so
 *       {@code {_id: x, version: 7}} (every conditional write of an aggregate) scanned the
 *       whole collection. String ids are found straight in the collection's map of positions
 *       (a document's position is its _id, as in the H2 backend); other ids through the _id
 *       index.
 *   <li>Documents are stored in the order they were inserted, each under a number, not
 *       under their _id (see {@link Collection_#addDocumentInternal}); a map in memory,
 *       rebuilt when the collection opens, finds a document's number from its _id.
 *   <li>Otherwise a filter that gives every field of a secondary index a value (or an
 *       {@code $in}) is answered from that index, with the whole filter applied to what it
 *       finds. Everything else is the library's scan.
 *   <li>A sorted page (a sort and a limit) walks a secondary index whose last field is the
 *       sort's, when that reads fewer documents than sorting the filter's matches: it reads
 *       documents in order and stops when the page is full. Otherwise it keeps the first
 *       matches in a bounded heap instead of sorting all of them: a page of 50 of 10,000
 *       accounts compares each account about once, not 14 times.
 *   <li>A count ({@code count_documents}: an aggregation of {@code $match}, {@code $skip},
 *       {@code $limit} and {@code $group {_id: 1, n: {$sum: 1}}}) is answered as the
 *       {@code count} command is: from the order of a secondary index of several fields
 *       when the filter gives each of them a value, else through the query above. The library ran that pipeline over a copy
 *       of every document of the collection, whatever the filter.
 *   <li>Any other pipeline that starts with {@code $match} runs its other stages over the
 *       documents that query finds, not over a copy of the whole collection (identity's
 *       pending list, 25,000 grants: seconds a page before). A {@code $group} of simple
 *       expressions and a {@code $sort} followed by a {@code $limit} are done in
 *       {@link Pipeline}; the other stages by the library.
 * </ul>
 */
final class Storage {

    private static final String ID = "_id";
    // The H2 backend's map names (package-private constants of H2Database).
    private static final String DATABASES_PREFIX = "databases.";
    private static final String META_PREFIX = "meta.";

    private Storage() {
    }

    static final class Database extends H2Database {
        // H2Database's constructor already opens collections, before a field of this class
        // could be set: the store comes from here (one store per process).
        private static volatile MVStore store;

        Database(String databaseName, MVStore mvStore, CursorRegistry cursorRegistry) {
            super(databaseName, remember(mvStore), cursorRegistry);
        }

        private static MVStore remember(MVStore mvStore) {
            store = mvStore;
            return mvStore;
        }

        @Override
        protected MongoCollection<Object> openOrCreateCollection(String collectionName, CollectionOptions options) {
            String fullName = getFullCollectionNamespace(collectionName);
            MVMap<Object, Document> dataMap = store.openMap(DATABASES_PREFIX + fullName, documentMap());
            MVMap<String, Object> metaMap = store.openMap(META_PREFIX + fullName);
            return new Collection_(this, collectionName, options, dataMap, metaMap, cursorRegistry);
        }

        /** A collection's documents are stored as BSON ({@link BsonDocumentType}). */
        static MVMap.Builder<Object, Document> documentMap() {
            return new MVMap.Builder<Object, Document>().valueType(BsonDocumentType.INSTANCE);
        }

        @Override
        public Document handleCommand(Channel channel, String command, Document query,
                                      DatabaseResolver databaseResolver, Oplog oplog) {
            if ("find".equals(command)) {
                // A find's documents are only projected (into new documents) and encoded into
                // its reply and its cursor's batches: the stored ones, not copies. Only here:
                // the library's findAndModify, deletes and aggregations query through the
                // same collection methods, and an update changes what it is given.
                return Collection_.handingOut(Collection_.Copies.NONE,
                    () -> super.handleCommand(channel, command, query, databaseResolver, oplog));
            }
            if ("aggregate".equals(command)) {
                Document answered = countOf(query);
                if (answered == null) {
                    answered = aggregateFromMatch(query, databaseResolver, oplog);
                }
                if (answered != null) {
                    return answered;
                }
            }
            return super.handleCommand(channel, command, query, databaseResolver, oplog);
        }

        /**
         * A pipeline that starts with {@code $match}: its other stages run over the documents
         * the query finds (an index, then the filter), as the library runs them over the
         * whole collection; null for any other pipeline (the library answers). The library
         * ran every stage, {@code $match} included, over a copy of every document.
         */
        private Document aggregateFromMatch(Document command, DatabaseResolver databaseResolver, Oplog oplog) {
            if (!(command.get("aggregate") instanceof String name) || !AGGREGATE_OPTIONS.containsAll(command.keySet())
                || !(command.get("pipeline") instanceof List<?> stages) || stages.isEmpty()
                || !(stages.get(0) instanceof Document first && first.size() == 1
                    && first.get("$match") instanceof Document match)
                || !(resolveCollection(name, false) instanceof Collection_ collection)) {
                return null;
            }
            List<Document> rest = new ArrayList<>(stages.size() - 1);
            for (Object stage : stages.subList(1, stages.size())) {
                if (!(stage instanceof Document document)) {
                    return null;
                }
                rest.add(document);
            }
            Aggregation aggregation = Aggregation.fromPipeline(rest, databaseResolver, this, collection, oplog);
            if (aggregation.isModifying()) {
                return null; // $out, $merge: the library's own path
            }
            aggregation.validate(command);
            boolean readOnly = rest.stream().allMatch(stage -> READING_STAGES.containsAll(stage.keySet()));
            Pipeline.Library library = (some, documents) -> Aggregation
                .fromPipeline(some, databaseResolver, this, collection, oplog)
                .runStages(documents.stream());
            return firstBatch(name, Pipeline.run(rest, collection.matching(match, readOnly), library));
        }

        private Document firstBatch(String collectionName, List<Document> documents) {
            Document cursor = new Document("firstBatch", documents)
                .append("id", 0L)
                .append("ns", getDatabaseName() + "." + collectionName);
            Document response = new Document("cursor", cursor);
            Utils.markOkay(response);
            return response;
        }

        /** The reply to a count pipeline, as the library's aggregation would give it; null for any other. */
        private Document countOf(Document command) {
            if (!(command.get("aggregate") instanceof String name) || !AGGREGATE_OPTIONS.containsAll(command.keySet())) {
                return null;
            }
            Counting counting = Counting.of(command.get("pipeline"));
            MongoCollection<Object> collection = counting == null ? null : resolveCollection(name, false);
            if (collection == null) {
                return null; // another pipeline, or no such collection: the library answers
            }
            int count = collection.count(counting.match(), counting.skip(), counting.limit());
            return firstBatch(name, count == 0 ? List.of() : List.of(new Document(ID, 1).append("n", count)));
        }

        @Override
        protected Index<Object> openOrCreateUniqueIndex(String collectionName, String indexName,
                                                        List<IndexKey> keys, boolean sparse) {
            return new MemoryUniqueIndex(indexName, keys, sparse);
        }

        @Override
        protected Index<Object> openOrCreateSecondaryIndex(String collectionName, String indexName,
                                                           List<IndexKey> keys, boolean sparse) {
            // Kept in memory and rebuilt from the data when the collection opens; a sparse
            // index's documents are a subset of these, and every lookup re-applies the filter.
            return new SecondaryIndex(indexName, keys);
        }
    }

    /**
     * The fields of an aggregate command answered here (any other, such as {@code let},
     * {@code collation}, {@code hint} or {@code explain}: the library answers).
     */
    private static final Set<String> AGGREGATE_OPTIONS = Set.of(
        "aggregate", "pipeline", "cursor", "$db", "lsid", "$clusterTime", "$readPreference", "txnNumber",
        "comment", "maxTimeMS", "allowDiskUse");

    /** Stages that only read the documents they are given ($group and $count build new ones). */
    private static final Set<String> READING_STAGES = Set.of("$match", "$group", "$count", "$sort", "$skip", "$limit");

    /**
     * The pipeline PyMongo's {@code count_documents} sends: {@code $match}, then optionally
     * {@code $skip} and {@code $limit}, then {@code $group: {_id: 1, n: {$sum: 1}}}.
     */
    record Counting(Document match, int skip, int limit) {

        static Counting of(Object pipeline) {
            if (!(pipeline instanceof List<?> stages) || stages.size() < 2 || stages.size() > 4) {
                return null;
            }
            if (!(stages.get(0) instanceof Document first && first.size() == 1
                && first.get("$match") instanceof Document match)) {
                return null;
            }
            Document group = new Document(ID, 1).append("n", new Document("$sum", 1));
            if (!(stages.get(stages.size() - 1) instanceof Document last && last.size() == 1
                && group.equals(last.get("$group")))) {
                return null;
            }
            int skip = 0;
            int limit = 0;
            int next = 1;
            if (next < stages.size() - 1) {
                Integer value = stageNumber(stages.get(next), "$skip");
                if (value != null) {
                    skip = value;
                    next++;
                }
            }
            if (next < stages.size() - 1) {
                Integer value = stageNumber(stages.get(next), "$limit");
                if (value == null || value <= 0) {
                    return null;
                }
                limit = value;
                next++;
            }
            return next == stages.size() - 1 ? new Counting(match, skip, limit) : null;
        }

        static Integer stageNumber(Object stage, String name) {
            if (stage instanceof Document document && document.size() == 1
                && document.get(name) instanceof Number number) {
                long value = number.longValue();
                if (value >= 0 && value <= Integer.MAX_VALUE && value == number.doubleValue()) {
                    return (int) value;
                }
            }
            return null;
        }
    }

    static final class Collection_ extends H2Collection {

        /** Up to this many documents (skip plus limit), a sorted page is kept in a heap. */
        static final int HEAP_SORT_MAX = 10_000;

        /** The documents, each under the number it was inserted as (see {@link Collection_}). */
        private final MVMap<Object, Document> dataMap;

        /** A document's position (its id field's value, as the H2 backend's) to its key in {@link #dataMap}. */
        private final Map<Object, Long> keys = new ConcurrentHashMap<>();

        private final AtomicLong lastKey;

        Collection_(MongoDatabase database, String collectionName, CollectionOptions options,
                    MVMap<Object, Document> dataMap, MVMap<String, Object> metaMap, CursorRegistry cursorRegistry) {
            super(database, collectionName, options, dataMap, metaMap, cursorRegistry);
            this.dataMap = dataMap;
            for (Map.Entry<Object, Document> entry : dataMap.entrySet()) {
                keys.put(positionOf(entry.getKey(), entry.getValue()), (Long) entry.getKey());
            }
            Object last = dataMap.lastKey();
            this.lastKey = new AtomicLong(last == null ? 0 : (Long) last);
        }

        /**
         * A document's position: its id field's value (what the H2 backend keys its documents
         * by, so the library's indexes and {@link SecondaryIndex}'s order hold ids), or its key
         * in the data map when the collection has no id field ({@code system.indexes}).
         */
        private Object positionOf(Object key, Document document) {
            return getIdField() == null ? key : Missing.ofNullable(Utils.getSubdocumentValue(document, getIdField()));
        }

        /**
         * Stored under the next number, not under its id. H2 rewrites every document of a
         * changed page at each commit, and ids here are hashes (crm's derived ids) or random:
         * keyed by id, each document written touched a page of its own, and a command that
         * wrote 80 documents re-encoded about a thousand. In insertion order, the documents
         * that one command inserts, and the ones written soon after them, share pages.
         */
        @Override
        protected Object addDocumentInternal(Document document) {
            long key = lastKey.incrementAndGet();
            Object position = positionOf(key, document);
            if (keys.putIfAbsent(position, key) != null) {
                throw new IllegalStateException("document " + position + " already exists in " + this);
            }
            dataMap.put(key, document);
            return position;
        }

        @Override
        protected Document getDocument(Object position) {
            Long key = keys.get(Missing.ofNullable(position));
            return key == null ? null : dataMap.get(key);
        }

        @Override
        protected void removeDocument(Object position) {
            Long key = keys.remove(Missing.ofNullable(position));
            if (key == null || dataMap.remove(key) == null) {
                throw new NoSuchElementException("No document with key " + position);
            }
        }

        @Override
        protected void handleUpdate(Object position, Document oldDocument, Document newDocument) {
            Long key = keys.get(Missing.ofNullable(position));
            if (key == null) {
                throw new NoSuchElementException("No document with key " + position);
            }
            dataMap.put(key, newDocument);
        }

        @Override
        protected Stream<DocumentWithPosition<Object>> streamAllDocumentsWithPosition() {
            return dataMap.entrySet().stream()
                .map(entry -> new DocumentWithPosition<>(entry.getValue(), positionOf(entry.getKey(), entry.getValue())));
        }

        /** As the H2 backend's, with {@code $natural} order now the order of insertion. */
        @Override
        protected QueryResult matchDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            if (!isNaturalDescending(orderBy)) {
                return super.matchDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
            }
            List<Document> newestFirst = new ArrayList<>(dataMap.values());
            Collections.reverse(newestFirst);
            return matchDocumentsFromStream(newestFirst.stream(), query, orderBy, numberToSkip, limit, batchSize,
                fieldSelector);
        }

        /**
         * The collection's data size (collStats' {@code size}) is not kept. Keeping it
         * encoded every document inserted, and both versions of every document updated, to
         * BSON only to count its bytes, and wrote the total to the store: an eighth of this
         * server's CPU while crm imported accounts. Nothing here reads it.
         */
        @Override
        protected boolean tracksDataSize() {
            return false;
        }

        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            List<Object> ids = idsNamedBy(query.get(ID));
            if (ids == null) {
                SecondaryIndex index = bestSecondaryIndex(query);
                Set<Object> found = index == null ? null : index.getPositions(query);
                List<Object> walk = walk(query, orderBy, numberToSkip, limit, found);
                if (walk != null) {
                    Stream<Document> inOrder = walk.stream().map(this::getDocument).filter(d -> d != null);
                    return matchDocumentsFromStream(query, inOrder, numberToSkip, limit, batchSize, null,
                        fieldSelector);
                }
                if (found != null) {
                    return matchExisting(query, found, orderBy, numberToSkip, limit, batchSize, fieldSelector);
                }
            }
            if (ids == null || (query.size() == 1 && !allStrings(ids))) {
                if (!(query.size() == 1 && query.containsKey(ID))) {
                    ScanLog.record(getCollectionName(), query); // no _id, no index: a scan
                }
                return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
            }
            List<Object> positions = new ArrayList<>();
            if (allStrings(ids)) {
                // A document's position is its _id: a string id is found straight in the
                // collection's keys, without building the _id index's key.
                for (Object id : ids) {
                    if (getDocument(id) != null) {
                        positions.add(id);
                    }
                }
            } else {
                Index<Object> idIndex = idIndex();
                if (idIndex == null) {
                    return super.queryDocuments(query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
                }
                for (Object id : ids) {
                    for (Object position : idIndex.getPositions(new Document(ID, id))) {
                        positions.add(position);
                    }
                }
            }
            return matchDocuments(query, positions, orderBy, numberToSkip, limit, batchSize, fieldSelector);
        }

        /**
         * What {@link #createQueryResult} hands out: the stored documents themselves, copies of
         * their top level, or deep copies (the default, for any path not named here).
         */
        enum Copies { NONE, TOP_LEVEL, DEEP }

        private static final ThreadLocal<Copies> COPIES = ThreadLocal.withInitial(() -> Copies.DEEP);

        /** Runs {@code work} with query results handed out as {@code copies}. */
        static <T> T handingOut(Copies copies, Supplier<T> work) {
            Copies before = COPIES.get();
            COPIES.set(copies);
            try {
                return work.get();
            } finally {
                COPIES.set(before);
            }
        }

        /**
         * The documents a filter matches, read as a query reads them (under its lock): the
         * stored ones themselves when {@code readOnly} (the stages that follow only read
         * them), else deep copies (a stage may change a nested document of its input).
         */
        synchronized List<Document> matching(Document match, boolean readOnly) {
            return handingOut(readOnly ? Copies.NONE : Copies.DEEP, () -> {
                List<Document> documents = new ArrayList<>();
                queryDocuments(match, null, 0, 0, 0, null).forEach(documents::add);
                return documents;
            });
        }

        /**
         * An update changes the top level of the document it is given (the library removes and
         * puts fields; the new values come from a deep copy it edits), then stores it.
         */
        @Override
        public synchronized Document updateDocuments(Document selector, Document updateQuery,
                                                     ArrayFilters arrayFilters, boolean isMulti, boolean isUpsert,
                                                     Oplog oplog) {
            return handingOut(Copies.TOP_LEVEL,
                () -> super.updateDocuments(selector, updateQuery, arrayFilters, isMulti, isUpsert, oplog));
        }

        /** As an update; a removed document is only read. */
        @Override
        public synchronized Document findAndModify(Document query) {
            return handingOut(Copies.TOP_LEVEL, () -> super.findAndModify(query));
        }

        /**
         * Hands out copies where the library would change what it is given, so it never
         * changes a stored document in place. It did: an update edited the instance held in
         * the store's page, field by field, while another thread's commit could be writing
         * that page (a ConcurrentModificationException closed the store in a bulk at 10,000
         * accounts, and a commit could have caught a half-updated document); and a reply could
         * be encoded while an update changed it. An update now stores its edited copy with one
         * put, and a commit or a reply sees the old version or the new one.
         *
         * <p>So a stored document, nested values included, never changes once stored: a find
         * command encodes the stored documents themselves ({@link Database#handleCommand}),
         * and an update's copy of the top level shares the nested values it does not replace.
         * Deep copies (the default) remain for every other path: the library's aggregation
         * stages may change nested documents. The mode is set where a command enters, not on
         * the collection's query methods, which the library's commands call one another
         * through (findAndModify and deletes query through {@code handleQuery}).
         */
        @Override
        protected QueryResult createQueryResult(List<Document> matchedDocuments, int batchSize) {
            Copies copies = COPIES.get();
            if (copies == Copies.NONE) {
                return super.createQueryResult(matchedDocuments, batchSize);
            }
            List<Document> handedOut = new ArrayList<>(matchedDocuments.size());
            for (Document document : matchedDocuments) {
                handedOut.add(copies == Copies.TOP_LEVEL ? document.clone() : document.cloneDeeply());
            }
            return super.createQueryResult(handedOut, batchSize);
        }

        /**
         * Sorted with a limit: keeps the first {@code skip + limit} matches in a bounded heap,
         * then lets the library skip, limit and project those, already in order. Matches that
         * compare equal keep the order in which they came, as the library's stable sort does.
         */
        @Override
        protected QueryResult matchDocumentsFromStream(Document query, Stream<Document> documentStream,
                                                       int numberToSkip, int limit, int batchSize,
                                                       Comparator<Document> documentComparator,
                                                       Document fieldSelector) {
            long wanted = (long) Math.max(numberToSkip, 0) + limit;
            if (documentComparator == null || limit <= 0 || wanted > HEAP_SORT_MAX) {
                return super.matchDocumentsFromStream(query, documentStream, numberToSkip, limit, batchSize,
                    documentComparator, fieldSelector);
            }
            Iterator<Document> matches = documentStream.filter(document -> documentMatchesQuery(document, query))
                .iterator();
            List<Document> first = Pipeline.first(matches, documentComparator, (int) wanted);
            return super.matchDocumentsFromStream(query, first.stream(), numberToSkip, limit, batchSize, null,
                fieldSelector);
        }

        /**
         * The positions to read, in the order asked, for a sorted page: walked from an index
         * whose last field is the sort's, when that is expected to read fewer documents than
         * sorting what the filter's best index finds ({@code found}, null when none). With
         * {@code n} documents under the walk's leading values and {@code m} found, a page of
         * {@code p} expects to read {@code p * n / m} documents before it is full. Null: sort.
         */
        private List<Object> walk(Document query, Document orderBy, int numberToSkip, int limit,
                                  Set<Object> found) {
            if (orderBy == null || orderBy.isEmpty() || limit <= 0) {
                return null;
            }
            long page = (long) Math.max(numberToSkip, 0) + limit;
            long matching = found == null ? -1 : found.size();
            SecondaryIndex best = null;
            long bestReads = matching < 0 ? Long.MAX_VALUE : matching;
            for (Index<Object> index : getIndexes()) {
                if (index instanceof SecondaryIndex secondary && secondary.couldWalk(query, orderBy)) {
                    long length = ordered(secondary).walkLength(query, orderBy);
                    if (length < 0) {
                        continue;
                    }
                    long reads = matching < 0 ? length : Math.min(length, page * length / Math.max(matching, 1));
                    if (reads < bestReads) {
                        best = secondary;
                        bestReads = reads;
                    }
                }
            }
            return best == null ? null : best.walk(query, orderBy);
        }

        /**
         * A filter made of one secondary index's fields alone is counted from that index,
         * without reading a document; any other goes through {@link #queryDocuments}.
         */
        @Override
        public int count(Document query, int skip, int limit) {
            if (query != null && !query.isEmpty()) {
                for (Index<Object> index : getIndexes()) {
                    if (index instanceof SecondaryIndex secondary && secondary.couldCount(query)) {
                        Integer count = ordered(secondary).countCovered(query);
                        if (count != null) {
                            int counted = Math.max(0, count - Math.max(skip, 0));
                            return limit > 0 ? Math.min(limit, counted) : counted;
                        }
                    }
                }
            }
            // The library counts what a query of the filter hands out (a document of each
            // match's _id): new documents, only counted, so not copied again.
            return handingOut(Copies.NONE, () -> super.count(query, skip, limit));
        }

        /**
         * The index, with its order built from every document if it had none: the first query
         * that could use an index's order pays for it (a read of the collection), and the
         * writes keep it from then on. Under the collection's lock, which writers hold.
         */
        private SecondaryIndex ordered(SecondaryIndex index) {
            if (!index.hasOrder()) {
                synchronized (this) {
                    if (!index.hasOrder()) {
                        index.buildOrder(() -> streamAllDocumentsWithPosition().iterator());
                    }
                }
            }
            return index;
        }

        /** The secondary index that narrows the filter by the most fields; null when none can. */
        private SecondaryIndex bestSecondaryIndex(Document query) {
            SecondaryIndex best = null;
            int bestFields = 0;
            for (Index<Object> index : getIndexes()) {
                if (index instanceof SecondaryIndex secondary) {
                    int fields = secondary.fieldsUsable(query);
                    if (fields > bestFields) {
                        best = secondary;
                        bestFields = fields;
                    }
                }
            }
            return best;
        }

        /** Applies the whole filter to the documents at these positions (one removed since is skipped). */
        private QueryResult matchExisting(Document query, Iterable<Object> positions, Document orderBy,
                                          int numberToSkip, int limit, int batchSize, Document fieldSelector) {
            List<Document> documents = new ArrayList<>();
            for (Object position : positions) {
                Document document = getDocument(position);
                if (document != null) {
                    documents.add(document);
                }
            }
            return matchDocumentsFromStream(documents.stream(), query, orderBy, numberToSkip, limit, batchSize,
                fieldSelector);
        }

        private static boolean allStrings(List<Object> ids) {
            for (Object id : ids) {
                if (!(id instanceof String)) {
                    return false;
                }
            }
            return true;
        }

        private Index<Object> idIndex() {
            for (Index<Object> index : getIndexes()) {
                if (index.isUnique() && index.getKeys().size() == 1 && ID.equals(index.getKeys().get(0).getKey())) {
                    return index;
                }
            }
            return null;
        }

        /** The ids a filter's {@code _id} condition names: a value, or the values of an $in; else null. */
        private static List<Object> idsNamedBy(Object condition) {
            if (condition == null) {
                return null;
            }
            if (!(condition instanceof Document document)) {
                return List.of(condition);
            }
            if (document.size() == 1 && document.get("$in") instanceof Collection<?> values) {
                for (Object value : values) {
                    if (value == null || value instanceof Document) {
                        return null; // leave null and sub-document semantics to the library
                    }
                }
                return new ArrayList<>(values);
            }
            for (String key : document.keySet()) {
                if (key.startsWith("$")) {
                    return null; // another operator ($gt, $ne, ...): the library's scan
                }
            }
            return null; // an embedded document as the id: leave it to the library
        }
    }
}
