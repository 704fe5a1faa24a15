/* record()'s fast path in C: apps.metrics.recording binds it and uses it as
 * record() when this module is built (`make venv`); it does what the Python
 * record_python() does for a series already known, in one C call.
 *
 * A series known by the registry's cache (its key made exactly as Python makes
 * it: the name, or (name, tuple(tags.items())) for a non-empty dict), a float
 * or int value that is finite and no explicit time: the sample is packed as
 * buffer.PACK packs it ("=qqd": number, time.time_ns(), value) and appended to
 * the process buffer's bytearray while it holds fewer than check_at bytes.
 * Everything else (a miss, an explicit time, another type, a value that is not
 * finite, tags that are not a dict) goes to the bound Python checked path,
 * which validates in full and raises what Python would; the buffer's slow add
 * (bound, wake) stays in Python too. The GIL is held throughout: a sample is
 * never torn, as with Python's single `+=`. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t number;
    int64_t ns;
    double value;
} Sample;

_Static_assert(sizeof(Sample) == 24, "a buffered sample is 24 bytes");

/* What bind() was given; NULL until then. */
static PyObject *known;     /* dict: series key -> registry number */
static PyObject *checked;   /* checked(name, value, tags, at) -> None */
static PyObject *namespace; /* apps.metrics.process's globals ("current") */
static PyObject *start;     /* process.buffer(): this process's buffer, started */

static PyObject *str_current;
static PyObject *str_data;
static PyObject *str_check_at;
static PyObject *str_add_slow;
static PyObject *arg_names[4]; /* name, value, tags, at */

static PyObject *
call_checked(PyObject *name, PyObject *value, PyObject *tags, PyObject *at)
{
    PyObject *args[4] = {name, value, tags, at};
    return PyObject_Vectorcall(checked, args, 4, NULL);
}

/* The cache key Python's record() uses; NULL with an exception set on failure. */
static PyObject *
series_key(PyObject *name, PyObject *tags)
{
    Py_ssize_t size = PyDict_GET_SIZE(tags);
    if (size == 0) {
        return Py_NewRef(name);
    }
    PyObject *items = PyTuple_New(size);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t position = 0, index = 0;
    PyObject *key, *value;
    while (index < size && PyDict_Next(tags, &position, &key, &value)) {
        PyObject *item = PyTuple_Pack(2, key, value);
        if (item == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        PyTuple_SET_ITEM(items, index++, item);
    }
    if (index != size || PyDict_GET_SIZE(tags) != size) {
        /* Changed meanwhile (by a finalizer an allocation ran): no key, the
         * checked path takes the call. */
        Py_DECREF(items);
        return Py_NewRef(Py_None);
    }
    PyObject *series = PyTuple_Pack(2, name, items);
    Py_DECREF(items);
    return series;
}

/* The series' registry number into *number: 1 when known, 0 when not (or the
 * key is unhashable), -1 with an exception set on another error. */
static int
known_number(PyObject *name, PyObject *tags, int64_t *number)
{
    PyObject *key = tags == Py_None ? Py_NewRef(name) : series_key(name, tags);
    if (key == NULL) {
        return -1;
    }
    if (key == Py_None) {
        Py_DECREF(key);
        return 0;
    }
    PyObject *found = PyDict_GetItemWithError(known, key); /* borrowed */
    int result = found != NULL;
    if (found != NULL) {
        *number = PyLong_AsLongLong(found); /* read while the key holds the tags */
        result = *number == -1 && PyErr_Occurred() ? -1 : 1;
    }
    else if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear(); /* an unhashable tag value: the checked path */
    }
    else if (PyErr_Occurred()) {
        result = -1;
    }
    Py_DECREF(key);
    return result;
}

/* value as a finite double into *out: 1 when it is one, else 0. */
static int
finite_value(PyObject *value, double *out)
{
    if (PyFloat_Check(value)) {
        *out = PyFloat_AS_DOUBLE(value);
    }
    else if (PyLong_CheckExact(value)) {
        *out = PyLong_AsDouble(value);
        if (*out == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* past float's range: the checked path says so */
            return 0;
        }
    }
    else {
        return 0;
    }
    return isfinite(*out);
}

static PyObject *
append(PyObject *buffer, const Sample *sample)
{
    PyObject *data = PyObject_GetAttr(buffer, str_data);
    if (data == NULL) {
        return NULL;
    }
    PyObject *check_at = PyObject_GetAttr(buffer, str_check_at);
    if (check_at == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(check_at);
    Py_DECREF(check_at);
    if (limit == -1 && PyErr_Occurred()) {
        Py_DECREF(data);
        return NULL;
    }
    if (PyByteArray_CheckExact(data) && PyByteArray_GET_SIZE(data) < limit) {
        Py_ssize_t size = PyByteArray_GET_SIZE(data);
        int resized = PyByteArray_Resize(data, size + (Py_ssize_t)sizeof(Sample));
        if (resized == 0) {
            memcpy(PyByteArray_AS_STRING(data) + size, sample, sizeof(Sample));
        }
        Py_DECREF(data);
        return resized == 0 ? Py_NewRef(Py_None) : NULL;
    }
    Py_DECREF(data);
    PyObject *packed = PyBytes_FromStringAndSize((const char *)sample, sizeof(Sample));
    if (packed == NULL) {
        return NULL;
    }
    PyObject *added = PyObject_CallMethodOneArg(buffer, str_add_slow, packed);
    Py_DECREF(packed);
    if (added == NULL) {
        return NULL;
    }
    Py_DECREF(added);
    Py_RETURN_NONE;
}

/* name, value, tags=None, at=None into args_out; -1 with TypeError set when
 * the call does not fit that signature. */
static int
parse(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **args_out)
{
    if (nargs > 4) {
        PyErr_Format(PyExc_TypeError,
                     "record() takes from 2 to 4 positional arguments but %zd were given",
                     nargs);
        return -1;
    }
    args_out[0] = args_out[1] = NULL;
    args_out[2] = args_out[3] = Py_None;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        args_out[i] = args[i];
    }
    Py_ssize_t keywords = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < keywords; k++) {
        PyObject *keyword = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t slot = 0;
        while (slot < 4 && keyword != arg_names[slot] &&
               PyUnicode_Compare(keyword, arg_names[slot]) != 0) {
            slot++;
        }
        if (slot == 4) {
            PyErr_Format(PyExc_TypeError,
                         "record() got an unexpected keyword argument '%U'", keyword);
            return -1;
        }
        if (slot < nargs) {
            PyErr_Format(PyExc_TypeError,
                         "record() got multiple values for argument '%U'", keyword);
            return -1;
        }
        args_out[slot] = args[nargs + k];
    }
    for (Py_ssize_t slot = 0; slot < 2; slot++) {
        if (args_out[slot] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "record() missing required argument '%U'", arg_names[slot]);
            return -1;
        }
    }
    return 0;
}

static PyObject *
record(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *given[4];
    if (parse(args, nargs, kwnames, given) < 0) {
        return NULL;
    }
    PyObject *name = given[0], *value = given[1], *tags = given[2], *at = given[3];
    if (known == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_recordc.record() before bind()");
        return NULL;
    }
    if (at != Py_None || (tags != Py_None && !PyDict_CheckExact(tags))) {
        return call_checked(name, value, tags, at);
    }
    Sample sample;
    int found = known_number(name, tags, &sample.number);
    if (found < 0) {
        return NULL;
    }
    if (found == 0 || !finite_value(value, &sample.value)) {
        return call_checked(name, value, tags, at);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sample.ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    PyObject *buffer = PyDict_GetItemWithError(namespace, str_current); /* borrowed */
    if (buffer == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (buffer == NULL || buffer == Py_None) {
        buffer = PyObject_CallNoArgs(start);
        if (buffer == NULL) {
            return NULL;
        }
    }
    else {
        Py_INCREF(buffer);
    }
    PyObject *result = append(buffer, &sample);
    Py_DECREF(buffer);
    return result;
}

static PyObject *
bind(PyObject *module, PyObject *args)
{
    PyObject *new_known, *new_checked, *new_namespace, *new_start;
    if (!PyArg_ParseTuple(args, "O!OO!O:bind", &PyDict_Type, &new_known, &new_checked,
                          &PyDict_Type, &new_namespace, &new_start)) {
        return NULL;
    }
    Py_XSETREF(known, Py_NewRef(new_known));
    Py_XSETREF(checked, Py_NewRef(new_checked));
    Py_XSETREF(namespace, Py_NewRef(new_namespace));
    Py_XSETREF(start, Py_NewRef(new_start));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL | METH_KEYWORDS,
     "record($module, /, name, value, tags=None, at=None)\n--\n\n"
     "Queue one sample for the persister; see apps.metrics.recording.record."},
    {"bind", bind, METH_VARARGS,
     "bind($module, known, checked, namespace, start, /)\n--\n\n"
     "The series cache, the checked path, the process module's globals and its "
     "buffer() that record() uses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_recordc",
    .m_doc = "record()'s fast path in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__recordc(void)
{
    static const char *names[4] = {"name", "value", "tags", "at"};
    for (int i = 0; i < 4; i++) {
        arg_names[i] = PyUnicode_InternFromString(names[i]);
        if (arg_names[i] == NULL) {
            return NULL;
        }
    }
    str_current = PyUnicode_InternFromString("current");
    str_data = PyUnicode_InternFromString("data");
    str_check_at = PyUnicode_InternFromString("check_at");
    str_add_slow = PyUnicode_InternFromString("add_slow");
    if (!str_current || !str_data || !str_check_at || !str_add_slow) {
        return NULL;
    }
    return PyModule_Create(&definition);
}
