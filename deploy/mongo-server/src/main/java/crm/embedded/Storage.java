package crm.embedded;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.h2.H2Collection;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;

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
 *       whole collection. String ids are found straight in the data map, where the H2
 *       backend keys documents by their _id; other ids through the _id index.
 *   <li>Otherwise a filter that gives every field of a secondary index a value (or an
 *       {@code $in}) is answered from that index, with the whole filter applied to what it
 *       finds. Everything else is the library's scan.
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

    static final class Collection_ extends H2Collection {

        Collection_(MongoDatabase database, String collectionName, CollectionOptions options,
                    MVMap<Object, Document> dataMap, MVMap<String, Object> metaMap, CursorRegistry cursorRegistry) {
            super(database, collectionName, options, dataMap, metaMap, cursorRegistry);
        }

        @Override
        protected QueryResult queryDocuments(Document query, Document orderBy, int numberToSkip, int limit,
                                             int batchSize, Document fieldSelector) {
            List<Object> ids = idsNamedBy(query.get(ID));
            if (ids == null) {
                SecondaryIndex index = bestSecondaryIndex(query);
                if (index != null) {
                    return matchExisting(query, index.getPositions(query), orderBy, numberToSkip, limit,
                        batchSize, fieldSelector);
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
                // The H2 backend stores a document under its _id itself: a string id is
                // found straight in the data map, without building the index's key.
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
         * Hands out copies: every document a query, an update, a findAndModify or a delete
         * works on comes through here, so the library never changes a stored document in
         * place. It did: an update edited the instance held in the store's page, field by
         * field, while another thread's commit could be writing that page (a
         * ConcurrentModificationException closed the store in a bulk at 10,000 accounts,
         * and a commit could have caught a half-updated document); and a reply could be
         * encoded while an update changed it. The update now stores its edited copy with
         * one put, and a commit or a reply sees the old version or the new one.
         */
        @Override
        protected QueryResult createQueryResult(List<Document> matchedDocuments, int batchSize) {
            List<Document> copies = new ArrayList<>(matchedDocuments.size());
            for (Document document : matchedDocuments) {
                copies.add(document.cloneDeeply());
            }
            return super.createQueryResult(copies, batchSize);
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
