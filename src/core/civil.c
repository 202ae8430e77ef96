#include "core/civil.h"

bool civil_is_leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int civil_days_in_month(int year, int month)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30,
				     31, 31, 30, 31, 30, 31};
	if (month == 2 && civil_is_leap(year))
		return 29;
	return days[month - 1];
}

/* Howard Hinnant's days_from_civil: eras of 400 years (146097 days). */
int64_t civil_days_from_date(int year, int month, int day)
{
	int64_t y = (int64_t)year - (month <= 2);
	int64_t era = civil_floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t mp = (month + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void civil_date_from_days(int64_t days, int *year, int *month, int *day)
{
	int64_t z = days + 719468;
	int64_t era = civil_floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	*year = (int)(y + (m <= 2));
	*month = (int)m;
	*day = (int)d;
}

int civil_weekday(int64_t days)
{
	/* 1970-01-01 was a Thursday (4). */
	return (int)civil_floor_mod(days + 4, 7);
}

void civil_from_time(hora_time t, hora_civil *out)
{
	int64_t secs = civil_floor_div(t, HORA_USEC_PER_SEC);
	int64_t days = civil_floor_div(secs, HORA_SEC_PER_DAY);
	int64_t sod = secs - days * HORA_SEC_PER_DAY;

	out->usec = (int)(t - secs * HORA_USEC_PER_SEC);
	civil_date_from_days(days, &out->year, &out->month, &out->day);
	out->hour = (int)(sod / 3600);
	out->minute = (int)(sod / 60 % 60);
	out->second = (int)(sod % 60);
}

hora_time civil_to_time(const hora_civil *c)
{
	int64_t days = civil_days_from_date(c->year, c->month, c->day);
	int64_t secs = days * HORA_SEC_PER_DAY + c->hour * 3600 +
		       c->minute * 60 + c->second;
	return secs * HORA_USEC_PER_SEC + c->usec;
}
