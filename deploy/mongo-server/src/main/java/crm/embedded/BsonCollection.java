package crm.embedded;

import java.util.NoSuchElementException;
import java.util.UUID;
import java.util.stream.Stream;

import org.h2.mvstore.MVMap;

import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.AbstractSynchronizedMongoCollection;
import de.bwaldvogel.mongo.backend.Assert;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.DocumentWithPosition;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.QueryResult;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.ValueComparator;
import de.bwaldvogel.mongo.bson.Document;

/**
 * A collection whose documents live in an H2 map as their BSON bytes: the H2 backend's
 * {@code H2Collection}, with the documents encoded when written and decoded when read.
 *
 * <p>Why bytes, not documents: H2 keeps a page's values in its cache as they are stored. As
 * decoded documents (maps of maps) a 10,000-account firm's data did not fit the cache, and a
 * list request decoded pages from the file twice (count, then the page), taking seconds; as
 * BSON it is about a third of the size. And every read is a fresh document: the library edits
 * the documents it reads in place (an update sets its fields one by one), which, on the
 * instance held in a page, raced the commit of another writer serializing that page (a
 * ConcurrentModificationException closed the store). Here an update edits its own copy and
 * stores it with one put.
 *
 * <p>Positions are the documents' {@code _id} (the map's keys), as in the H2 backend.
 */
class BsonCollection extends AbstractSynchronizedMongoCollection<Object> {

    private static final String DATA_SIZE_KEY = "dataSize";

    private final MVMap<Object, byte[]> dataMap;
    private final MVMap<String, Object> metaMap;

    BsonCollection(MongoDatabase database, String collectionName, CollectionOptions options,
                   MVMap<Object, byte[]> dataMap, MVMap<String, Object> metaMap, CursorRegistry cursorRegistry) {
        super(database, collectionName, options, cursorRegistry);
        this.dataMap = dataMap;
        this.metaMap = metaMap;
        if (!this.metaMap.containsKey(DATA_SIZE_KEY)) {
            this.metaMap.put(DATA_SIZE_KEY, Long.valueOf(0));
        }
    }

    @Override
    protected void updateDataSize(int sizeDelta) {
        synchronized (metaMap) {
            Number value = (Number) metaMap.get(DATA_SIZE_KEY);
            metaMap.put(DATA_SIZE_KEY, Long.valueOf(value.longValue() + sizeDelta));
        }
    }

    @Override
    protected int getDataSize() {
        return ((Number) metaMap.get(DATA_SIZE_KEY)).intValue();
    }

    @Override
    protected Object addDocumentInternal(Document document) {
        final Object key;
        if (getIdField() != null) {
            key = Utils.getSubdocumentValue(document, getIdField());
        } else {
            key = UUID.randomUUID();
        }
        byte[] previous = dataMap.put(Missing.ofNullable(key), BsonBytesType.encode(document));
        Assert.isNull(previous, () -> "Document with key '" + key + "' already existed in " + this);
        return key;
    }

    @Override
    public int count() {
        return dataMap.size();
    }

    @Override
    public boolean isEmpty() {
        return dataMap.isEmpty();
    }

    @Override
    protected Document getDocument(Object position) {
        byte[] bytes = dataMap.get(position);
        return bytes == null ? null : BsonBytesType.decode(bytes);
    }

    @Override
    protected void removeDocument(Object position) {
        if (dataMap.remove(position) == null) {
            throw new NoSuchElementException("No document with key " + position);
        }
    }

    @Override
    protected Stream<DocumentWithPosition<Object>> streamAllDocumentsWithPosition() {
        return dataMap.entrySet().stream()
            .map(entry -> new DocumentWithPosition<>(BsonBytesType.decode(entry.getValue()), entry.getKey()));
    }

    @Override
    protected QueryResult matchDocuments(Document query, Document orderBy, int numberToSkip, int limit, int batchSize,
                                         Document fieldSelector) {
        final Stream<Document> documentStream;
        if (isNaturalDescending(orderBy)) {
            documentStream = streamAllDocumentsWithPosition()
                .sorted((o1, o2) -> ValueComparator.desc().compare(o1.getPosition(), o2.getPosition()))
                .map(DocumentWithPosition::getDocument);
        } else {
            documentStream = dataMap.values().stream().map(BsonBytesType::decode);
        }
        return matchDocumentsFromStream(documentStream, query, orderBy, numberToSkip, limit, batchSize, fieldSelector);
    }

    @Override
    protected void handleUpdate(Object position, Document oldDocument, Document newDocument) {
        dataMap.put(Missing.ofNullable(position), BsonBytesType.encode(newDocument));
    }
}
